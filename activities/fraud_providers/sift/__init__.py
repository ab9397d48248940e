"""Sift: Events API v205 (`$create_order` with the synchronous workflow status and score; then
`$transaction` and `$chargeback` as feedback) and the Decisions API (decision id -> category)."""
