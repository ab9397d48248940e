"""`python -m workers.bench`: the same as `durapay bench`, without the CLI's global options."""

import argparse
import asyncio
import sys

from workers.bench.main import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m workers.bench", description=__doc__)
add_arguments(parser)
sys.exit(asyncio.run(run(parser.parse_args())))
