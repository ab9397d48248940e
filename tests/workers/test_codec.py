"""The AES-256-GCM payload codec: round trip, key rotation, tamper detection, its configuration, and a
payment through the whole stack with it on, whose history holds ciphertext only."""

from __future__ import annotations

import base64
import json
import os

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from tests.stack import API_KEY_ID, running_stack
from workers.codec import ENCODING, KEY_ID_METADATA, AesGcmCodec, CodecError, decode_key
from workers.config import ConfigError, load_config
from workers.worker import Runtime, build_worker, data_converter, payload_codec
from workflows.client import workflow_id
from workflows.payment import PaymentWorkflow

SECRET_TEXT = b'{"customer_email":"ada@example.com","metadata":{"note":"private"}}'


def new_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def plain(data: bytes = SECRET_TEXT) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_round_trip_seals_every_payload_and_opens_it_again() -> None:
    codec = AesGcmCodec({"k1": new_key()}, "k1")
    originals = [plain(), plain(b'"second"')]
    sealed = await codec.encode(originals)
    for payload in sealed:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
        assert b"ada@example.com" not in payload.SerializeToString()
    assert await codec.decode(sealed) == originals
    # A fresh nonce per payload: the same plaintext never seals to the same bytes.
    again = await codec.encode(originals[:1])
    assert again[0].data != sealed[0].data


async def test_payloads_written_before_the_codec_pass_through() -> None:
    codec = AesGcmCodec({"k1": new_key()}, "k1")
    assert await codec.decode([plain()]) == [plain()]


async def test_rotation_keeps_old_payloads_readable() -> None:
    old_key, new = new_key(), new_key()
    before = AesGcmCodec({"2025": old_key}, "2025")
    after = AesGcmCodec({"2025": old_key, "2026": new}, "2026")
    sealed_before = await before.encode([plain()])
    sealed_after = await after.encode([plain()])
    assert sealed_after[0].metadata[KEY_ID_METADATA] == b"2026"
    assert await after.decode(sealed_before + sealed_after) == [plain(), plain()]
    # A process still on the old keys names the key it lacks rather than failing obscurely.
    with pytest.raises(CodecError, match="unknown key '2026'"):
        await before.decode(sealed_after)


async def test_tampering_is_detected() -> None:
    codec = AesGcmCodec({"k1": new_key(), "k2": new_key()}, "k1")
    [sealed] = await codec.encode([plain()])

    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:20])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"k2"}, data=sealed.data)
    for forged in (flipped, truncated, relabelled):
        with pytest.raises(CodecError, match="failed authentication"):
            await codec.decode([forged])


async def test_failure_messages_are_sealed_and_their_types_stay_readable() -> None:
    converter = data_converter(AesGcmCodec({"k1": new_key()}, "k1"))
    failure = Failure()
    await converter.encode_failure(
        ApplicationError("card of ada@example.com declined", type="GatewayInvalidRequest"), failure
    )
    assert b"ada@example.com" not in failure.SerializeToString()
    assert failure.application_failure_info.type == "GatewayInvalidRequest"  # what the workflow branches on
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == "card of ada@example.com declined"
    assert data_converter(None) is pydantic_data_converter


def test_unusable_keys_are_refused_and_never_shown() -> None:
    key = new_key()
    with pytest.raises(CodecError, match="32 bytes, this one is 16"):
        AesGcmCodec({"k1": key[:16]}, "k1")
    with pytest.raises(CodecError, match="active key 'k2'"):
        AesGcmCodec({"k1": key}, "k2")
    with pytest.raises(CodecError, match="key id"):
        AesGcmCodec({"no spaces": key}, "no spaces")
    assert decode_key(b64(key)) == key
    with pytest.raises(CodecError, match="not standard base64") as refused:
        decode_key("not!base64")
    assert "not!base64" not in str(refused.value)
    assert repr(AesGcmCodec({"k1": key}, "k1")) == "AesGcmCodec(active='k1', keys=['k1'])"


def test_configuration_builds_the_codec_and_masks_its_keys() -> None:
    key = new_key()
    environ = {
        "DURAPAY_TEMPORAL__CODEC_KEYS": json.dumps({"2026": b64(key)}),
        "DURAPAY_TEMPORAL__CODEC_ACTIVE_KEY": "2026",
    }
    config = load_config(environ=environ, use_default_file=False)
    codec = payload_codec(config)
    assert codec is not None and (codec.active_key_id, codec.key_ids) == ("2026", ["2026"])
    assert b64(key) not in json.dumps(config.masked()) and b64(key) not in repr(config)
    assert payload_codec(load_config(environ={}, use_default_file=False)) is None  # off by default


@pytest.mark.parametrize(
    ("temporal", "problem"),
    [
        ({"codec_keys": {"k1": "c2hvcnQ="}}, "codec key 'k1': an AES-256 key is 32 bytes"),
        ({"codec_keys": {"k1": "***"}}, "codec key 'k1': not standard base64"),
        ({"codec_keys": {"k1": b64(new_key())}}, "codec_active_key None must name one of codec_keys"),
        (
            {"codec_keys": {"k1": b64(new_key())}, "codec_active_key": "k2"},
            "must name one of codec_keys (k1)",
        ),
        ({"codec_active_key": "k1"}, "codec_active_key is set but codec_keys is empty"),
    ],
)
def test_configuration_mistakes_fail_at_load(temporal: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_config(environ={}, use_default_file=False, overrides={"temporal": temporal})


async def test_a_worker_refuses_a_client_that_would_not_encrypt(temporal_env, sqlite_url) -> None:
    key = b64(new_key())
    config = load_config(
        environ={},
        use_default_file=False,
        overrides={
            "database": {"url": sqlite_url},
            "payment": {"mock": {"enabled": True}},
            "temporal": {"codec_keys": {"k1": key}, "codec_active_key": "k1"},
        },
    )
    async with await Runtime.open(config, migrate_database=True) as runtime:
        with pytest.raises(ValueError, match="payload codec does not match"):
            await build_worker(temporal_env.client, config, runtime=runtime, task_queue="unused")


async def test_a_payment_with_the_codec_on_leaves_only_ciphertext_in_its_history(
    temporal_env, task_queue, sqlite_url, unique
) -> None:
    email = f"customer-{unique}@example.com"
    note = f"note-{unique}"
    codec_config = {
        "temporal": {"codec_keys": {"k1": b64(new_key())}, "codec_active_key": "k1"},
        # The codec server hands out decrypted customer data: keys with the ops scope only.
        "api_key_scopes": {API_KEY_ID: ["payments:write", "payments:read", "ops"]},
    }
    async with (
        running_stack(
            temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=codec_config
        ) as stack,
        stack.http() as http,
    ):
        created = await http.post(
            "/v1/payments",
            json={
                "order_id": f"order-{unique}",
                "amount": "12.50",
                "currency": "EUR",
                "payment_method": {"type": "card", "token": "tok_visa"},
                "customer_email": email,
                "metadata": {"note": note},
            },
            headers=stack.headers(unique),
        )
        # The worker read its encrypted input and the API its encrypted answer.
        assert created.status_code == 201, created.text
        payment_workflow_id = workflow_id(created.json()["id"])
        assert (
            await stack.client.get_workflow_handle(payment_workflow_id).query(PaymentWorkflow.view)
        ).status == "paid"

        # What the Temporal server holds, read without the codec.
        plain_handle = temporal_env.client.get_workflow_handle(payment_workflow_id)
        history = await plain_handle.fetch_history()
        stored = b"".join(event.SerializeToString() for event in history.events)
        stored += (await plain_handle.describe()).raw_description.SerializeToString()
        assert f"order-{unique}".encode() in stored  # a search attribute, in the clear by design
        assert email.encode() not in stored and note.encode() not in stored
        started = next(
            e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        )
        [sealed_input] = started.workflow_execution_started_event_attributes.input.payloads
        assert sealed_input.metadata["encoding"] == ENCODING
        with pytest.raises(KeyError, match="Unknown payload encoding"):  # nor can a client without the codec
            pydantic_data_converter.payload_converter.from_payload(sealed_input)

        # The codec server of the same stack opens it for the UI.
        decoded = await http.post(
            "/codec/default/decode",
            content=json_format.MessageToJson(Payloads(payloads=[sealed_input])),
            headers={**stack.headers(), "Content-Type": "application/json", "X-Namespace": "default"},
        )
        assert decoded.status_code == 200, decoded.text
        [opened] = json_format.Parse(decoded.content, Payloads()).payloads
        assert email.encode() in opened.data and note.encode() in opened.data
