"""The shared primitives WeChat Pay needs (AEAD_AES_256_GCM, the newline layout, X.509 serials) and
the WeChat Pay settings model (keys from PEM text or files, secrets masked)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from activities.gateways.fake_server import keypair
from activities.gateways.signing import (
    DecryptionError,
    aes_256_gcm_decrypt,
    aes_256_gcm_encrypt,
    certificate_serial_hex,
    line_message,
    self_signed_certificate,
)
from activities.gateways.wechat_pay.settings import WechatPaySettings

KEY = "0123456789abcdef0123456789abcdef"


def test_gcm_round_trip_with_associated_data():
    ciphertext = aes_256_gcm_encrypt(KEY, "abcdefghijkl", "transaction", '{"a":"支付"}')
    assert len(base64.b64decode(ciphertext)) == len('{"a":"支付"}'.encode()) + 16  # tag appended
    assert aes_256_gcm_decrypt(KEY, "abcdefghijkl", "transaction", ciphertext) == '{"a":"支付"}'.encode()


def test_gcm_empty_associated_data():
    ciphertext = aes_256_gcm_encrypt(KEY, "abcdefghijkl", "", "x")
    assert aes_256_gcm_decrypt(KEY, "abcdefghijkl", "", ciphertext) == b"x"


@pytest.mark.parametrize(
    ("key", "nonce", "aad"),
    [
        ("f" * 32, "abcdefghijkl", "transaction"),
        (KEY, "abcdefghijkX", "transaction"),
        (KEY, "abcdefghijkl", "refund"),
    ],
)
def test_gcm_rejects_wrong_key_nonce_or_associated_data(key, nonce, aad):
    ciphertext = aes_256_gcm_encrypt(KEY, "abcdefghijkl", "transaction", "x")
    with pytest.raises(DecryptionError):
        aes_256_gcm_decrypt(key, nonce, aad, ciphertext)


def test_gcm_rejects_a_flipped_bit_and_junk():
    raw = bytearray(base64.b64decode(aes_256_gcm_encrypt(KEY, "abcdefghijkl", "", "payload")))
    raw[0] ^= 1
    with pytest.raises(DecryptionError):
        aes_256_gcm_decrypt(KEY, "abcdefghijkl", "", base64.b64encode(bytes(raw)).decode())
    with pytest.raises(DecryptionError):
        aes_256_gcm_decrypt(KEY, "abcdefghijkl", "", "not base64!")


def test_gcm_needs_a_32_byte_key():
    with pytest.raises(ValueError):
        aes_256_gcm_encrypt("short", "abcdefghijkl", "", "x")


def test_line_message_ends_every_line_with_a_newline():
    assert line_message("1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", "{}") == (
        "1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{}\n"
    )
    assert line_message("GET", "/v3/certificates", "1", "n", "") == "GET\n/v3/certificates\n1\nn\n\n"


def test_certificate_serial_is_upper_case_hex():
    pem = self_signed_certificate(keypair("wechat-platform")[0], "t", serial_number=0x1A2B3C4D5E)
    assert certificate_serial_hex(pem) == "1A2B3C4D5E"


# -------------------------------------------------------------------- settings


def base_settings(**overrides):
    values = dict(
        mchid="1900009191",
        appid="wxd678efh567hg6787",
        merchant_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        private_key=keypair("wechat-merchant")[0],
        apiv3_key=KEY,
        notify_url="https://merchant.example/webhooks/wechat_pay",
    )
    values.update(overrides)
    return WechatPaySettings(**values)


def test_keys_can_come_from_files(tmp_path):
    private = tmp_path / "apiclient_key.pem"
    private.write_text(keypair("wechat-merchant")[0])
    public = tmp_path / "pub_key.pem"
    public.write_text(keypair("wechat-platform")[1])
    settings = base_settings(
        private_key=None,
        private_key_file=private,
        platform_public_key_file=public,
        platform_public_key_id="PUB_KEY_ID_0000000000000024101100397200000006",
    )
    assert settings.private_key.get_secret_value() == keypair("wechat-merchant")[0]
    assert settings.platform_public_key == keypair("wechat-platform")[1]
    assert settings.fetch_platform_certificates is False  # public-key mode needs no download


def test_certificate_mode_is_the_default_without_a_public_key():
    assert base_settings().fetch_platform_certificates is True


def test_secrets_are_masked_in_repr():
    text = repr(base_settings())
    assert KEY not in text and "PRIVATE KEY" not in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(apiv3_key="too-short"), "32 bytes"),
        (dict(private_key=None), "private_key"),
        (dict(private_key="not a key"), "RSA private key"),
        (dict(platform_public_key=keypair("wechat-platform")[1]), "go together"),
        (dict(fetch_platform_certificates=False), "no way to verify"),
        (dict(unexpected="x"), "Extra inputs"),
    ],
)
def test_invalid_settings_fail_at_start(overrides, message):
    with pytest.raises(ValidationError, match=message):
        base_settings(**overrides)


def test_the_api_base_must_be_https_except_to_a_loopback_fake():
    """Issue #17 item 8: requests carry our signature and the customer's data, as Stripe's do."""
    with pytest.raises(ValidationError, match="https"):
        base_settings(api_base="http://api.mch.weixin.qq.com")
    assert base_settings(api_base="http://127.0.0.1:9000").api_base == "http://127.0.0.1:9000"


def test_validation_errors_never_show_the_private_key():
    """Issue #17 item 8: pydantic prints the input beside each error: a key of the wrong type, or
    the whole settings mapping for a model-level refusal."""
    for overrides in (
        dict(private_key=["s3cr3t-not-a-key"]),
        dict(private_key="s3cr3t-not-a-key", mchid="1"),
        dict(apiv3_key=123456789012345678901234567890),
    ):
        with pytest.raises(ValidationError) as caught:
            base_settings(**overrides)
        assert "s3cr3t" not in str(caught.value) and "1234567890" not in str(caught.value)


async def test_the_registry_builds_it_from_a_config_section():
    from activities.gateways.registry import GatewayRegistry
    from activities.gateways.wechat_pay.adapter import WechatPayGateway

    section = base_settings(fetch_platform_certificates=True).model_dump(
        mode="json", exclude={"private_key", "apiv3_key"}
    )
    section.update(enabled=True, private_key=keypair("wechat-merchant")[0], apiv3_key=KEY)
    async with GatewayRegistry.from_config({"wechat_pay": section}) as registry:
        assert isinstance(registry.get("wechat_pay"), WechatPayGateway)
        assert registry.profiles()["wechat_pay"].methods == ["wallet:wechat_pay"]
