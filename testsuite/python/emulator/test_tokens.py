"""Token endpoints (IMDS, AAD v2.0) and how ARM checks the bearer token."""

import time

from conftest import ARM_SCOPE, CLIENT_ID, CLIENT_SECRET, SUB

IMDS_QUERY = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
SOME_ARM_GET = (f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/"
                "Microsoft.Compute/availabilitySets")


def test_imds_requires_the_metadata_header(emu):
    r = emu.imds(IMDS_QUERY)
    assert r.status == 400
    assert r.json == {"error": "invalid_request",
                      "error_description": "Required metadata header not specified"}


def test_imds_rejects_a_metadata_header_not_in_lower_case(emu):
    assert emu.imds(IMDS_QUERY, headers={"Metadata": "True"}).status == 400


def test_imds_token_has_string_numbers(emu):
    before = int(time.time())
    r = emu.imds(IMDS_QUERY, headers={"Metadata": "true"})
    assert r.status == 200, r
    body = r.json
    for field in ("expires_in", "expires_on", "not_before"):
        assert isinstance(body[field], str), field
    assert body["expires_in"] == "3599"
    assert before <= int(body["not_before"]) <= int(time.time())
    assert int(body["expires_on"]) == int(body["not_before"]) + 3599
    assert body["resource"] == IMDS_QUERY["resource"]
    assert body["token_type"] == "Bearer"
    assert emu.arm("GET", SOME_ARM_GET, token=body["access_token"]).status == 200


def test_imds_token_with_client_id(emu):
    r = emu.imds(dict(IMDS_QUERY, client_id="0000-user-assigned"), headers={"Metadata": "true"})
    assert r.status == 200 and r.json["client_id"] == "0000-user-assigned"


def test_imds_requires_a_resource(emu):
    r = emu.imds({"api-version": "2018-02-01"}, headers={"Metadata": "true"})
    assert r.status == 400 and r.json["error"] == "invalid_request"


def test_aad_client_credentials_token_has_numeric_expires_in(emu):
    r = emu.aad({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                 "client_secret": CLIENT_SECRET, "scope": ARM_SCOPE})
    assert r.status == 200, r
    assert r.json["token_type"] == "Bearer"
    assert r.json["expires_in"] == 3599 and isinstance(r.json["expires_in"], int)
    assert emu.arm("GET", SOME_ARM_GET, token=r.json["access_token"]).status == 200


def test_aad_wrong_secret_is_invalid_client(emu):
    r = emu.aad({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                 "client_secret": "wrong", "scope": ARM_SCOPE})
    assert r.status == 401
    body = r.json
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
        "request is the client secret value, not the client secret ID, for a secret added to "
        f"app '{CLIENT_ID}'.\r\nTrace ID: ")
    assert body["error_codes"] == [7000215]
    for field in ("timestamp", "trace_id", "correlation_id"):
        assert body[field]


def test_aad_unknown_client_is_unauthorized_client(emu):
    r = emu.aad({"grant_type": "client_credentials", "client_id": "nobody",
                 "client_secret": "x", "scope": ARM_SCOPE})
    assert r.status == 400
    assert r.json["error"] == "unauthorized_client" and r.json["error_codes"] == [700016]


def test_aad_scope_must_be_dot_default(emu):
    r = emu.aad({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                 "client_secret": CLIENT_SECRET, "scope": "https://management.azure.com/"})
    assert r.status == 400 and r.json["error"] == "invalid_scope"


def test_arm_without_token_is_401_authentication_failed(emu):
    r = emu.request("GET", SOME_ARM_GET + "?api-version=2024-11-01")
    assert r.status == 401
    assert r.error == {"code": "AuthenticationFailed",
                      "message": "Authentication failed. The 'Authorization' header is missing."}
    assert r.header("WWW-Authenticate").startswith("Bearer authorization_uri=")
    assert r.header("x-ms-request-id")


def test_arm_with_unknown_token_is_401(emu):
    r = emu.arm("GET", SOME_ARM_GET, token="not-a-token")
    assert r.status == 401 and r.error["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in r.headers


def test_expired_tokens_get_expired_authentication_token(emu):
    token = emu.new_token()
    assert emu.arm("GET", SOME_ARM_GET, token=token).status == 200
    emu.admin("POST", "tokens/expire")
    r = emu.arm("GET", SOME_ARM_GET, token=token)
    assert r.status == 401
    assert r.error["code"] == "ExpiredAuthenticationToken"
    assert r.error["message"].startswith("The access token expiry UTC time '")
    assert 'error="invalid_token"' in r.header("WWW-Authenticate")
    # A new token works again.
    assert emu.arm("GET", SOME_ARM_GET, token=emu.new_token()).status == 200
    emu._token = None


def test_token_lifetime_is_configurable(make_emulator):
    emu = make_emulator({"auth": {"tokenLifetime": 1}})
    r = emu.aad({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                 "client_secret": CLIENT_SECRET, "scope": ARM_SCOPE})
    assert r.json["expires_in"] == 1
    token = r.json["access_token"]
    time.sleep(1.1)
    assert emu.arm("GET", SOME_ARM_GET, token=token).error["code"] == "ExpiredAuthenticationToken"


def test_token_for_another_audience_is_rejected_by_arm(emu):
    r = emu.imds({"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
                 headers={"Metadata": "true"})
    arm = emu.arm("GET", SOME_ARM_GET, token=r.json["access_token"])
    assert arm.status == 401 and arm.error["code"] == "InvalidAuthenticationTokenAudience"
