"""Tokens: issued by the IMDS managed-identity endpoint and the AAD v2.0 token endpoint,
checked by ARM. Tokens are opaque random strings kept in the persistent state, so a
client's cached token stays valid across an emulator restart, as a real one would."""

import datetime
import secrets
import time
import uuid

from . import errors
from .httpserv import json_response
from .util import guid

# Audiences ARM accepts (public, US Government and China clouds), without trailing '/'.
ARM_AUDIENCES = (
    "https://management.azure.com", "https://management.core.windows.net",
    "https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net",
    "https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn",
)
SYSTEM_IDENTITY = "system-assigned"
# The client id IMDS reports for the VM's system-assigned identity.
SYSTEM_CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "azemu:system-assigned-identity"))
# Expired tokens are remembered for an hour (to answer ExpiredAuthenticationToken rather
# than InvalidAuthenticationToken), then forgotten so the state file does not grow.
TOKEN_RETENTION = 3600


def _arm_time(t):
    """The expiry format in ExpiredAuthenticationToken messages: 11/21/2024 5:44:00 AM."""
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    hour = dt.hour % 12 or 12
    return f"{dt.month}/{dt.day}/{dt.year} {hour}:{dt.minute:02d}:{dt.second:02d} " \
           f"{'AM' if dt.hour < 12 else 'PM'}"


class Principal:
    def __init__(self, client, audience):
        self.client = client
        self.audience = audience


class TokenService:
    def __init__(self, world):
        self.world = world
        self.cfg = world.cfg

    # --- issuing ---------------------------------------------------------------------

    def issue(self, client, audience):
        token = secrets.token_urlsafe(48)
        t = int(time.time())
        with self.world.store.lock:
            tokens = self.world.store.data["tokens"]
            for old in [k for k, v in tokens.items() if v["exp"] + TOKEN_RETENTION < t]:
                del tokens[old]
            tokens[token] = {"exp": t + self.cfg.token_lifetime, "nbf": t,
                             "aud": audience, "client": client}
            self.world.store.save()
        return token, t

    def expire_all(self):
        """Every issued token is expired now (admin API)."""
        t = int(time.time())
        with self.world.store.lock:
            for rec in self.world.store.data["tokens"].values():
                rec["exp"] = min(rec["exp"], t - 1)
            self.world.store.save()

    # --- checking (ARM) --------------------------------------------------------------

    def authenticate(self, request):
        header = request.header("Authorization")
        if not header:
            raise errors.auth_missing()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.auth_malformed()
        with self.world.store.lock:
            rec = self.world.store.data["tokens"].get(token.strip())
        if rec is None:
            raise errors.auth_invalid()
        t = time.time()
        if t >= rec["exp"]:
            raise errors.auth_expired(_arm_time(rec["exp"]), _arm_time(t))
        if rec["aud"].rstrip("/") not in ARM_AUDIENCES:
            raise errors.auth_wrong_audience(rec["aud"], [a + "/" for a in ARM_AUDIENCES[:2]])
        return Principal(rec["client"], rec["aud"])

    # --- IMDS ------------------------------------------------------------------------

    def imds(self, request):
        def bad(status, description, error="invalid_request"):
            return json_response(status, {"error": error, "error_description": description})

        if request.path.rstrip("/") != "/metadata/identity/oauth2/token":
            return bad(404, "The requested resource was not found", "not_found")
        if request.method != "GET":
            return bad(405, "The requested method is not supported", "method_not_allowed")
        if request.header("Metadata") != "true":
            return bad(400, "Required metadata header not specified")
        if request.header("X-Forwarded-For"):
            # IMDS refuses requests that went through a proxy.
            return bad(400, "Request contains X-Forwarded-For header")
        if not request.query.get("api-version"):
            return bad(400, "Required query variable 'api-version' is missing")
        resource = request.query.get("resource")
        if not resource:
            return bad(400, "Required audience parameter not specified")
        client = request.query.get("client_id") or request.query.get("object_id") \
            or request.query.get("msi_res_id") or SYSTEM_IDENTITY
        known = self.cfg.managed_identities
        if client != SYSTEM_IDENTITY and known is not None and client not in known:
            return bad(400, "Identity not found")
        token, t = self.issue(client, resource)
        lifetime = self.cfg.token_lifetime
        # IMDS returns every number as a string.
        return json_response(200, {
            "access_token": token, "refresh_token": "", "expires_in": str(lifetime),
            "expires_on": str(t + lifetime), "not_before": str(t), "resource": resource,
            "token_type": "Bearer",
            "client_id": client if client != SYSTEM_IDENTITY else SYSTEM_CLIENT_ID,
        })

    # --- AAD v2.0 client credentials -------------------------------------------------

    def _aad_error(self, status, error, code, description):
        trace, corr = guid(), guid()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        return json_response(status, {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
            "error_codes": [code], "timestamp": stamp, "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        })

    def _missing_parameter(self, name):
        return self._aad_error(400, "invalid_request", 900144,
                               f"The request body must contain the following parameter: '{name}'.")

    def aad_token(self, request, tenant):
        if request.method != "POST":
            return self._aad_error(400, "invalid_request", 900561,
                                   "The endpoint only accepts POST requests. Received a "
                                   f"{request.method} request.")
        if self.cfg.tenant and tenant.lower() != self.cfg.tenant.lower():
            return self._aad_error(400, "invalid_request", 90002,
                                   f"Tenant '{tenant}' not found. Check to make sure you have the "
                                   "correct tenant ID and are signing into the correct cloud.")
        form = request.form()
        grant = form.get("grant_type")
        if not grant:
            return self._missing_parameter("grant_type")
        if grant != "client_credentials":
            return self._aad_error(400, "unsupported_grant_type", 70003,
                                   "The app requested an unsupported grant type "
                                   f"'{grant}'.")
        client = form.get("client_id")
        if not client:
            return self._missing_parameter("client_id")
        scope = form.get("scope")
        if not scope:
            return self._missing_parameter("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return self._aad_error(400, "invalid_scope", 1002012,
                                   f"The provided value for scope {scope} is not valid. Client "
                                   "credential flows must have a scope value with /.default "
                                   "suffixed to the resource identifier (application ID URI).")
        if client not in self.cfg.clients:
            return self._aad_error(400, "unauthorized_client", 700016,
                                   f"Application with identifier '{client}' was not found in the "
                                   f"directory '{tenant}'. This can happen if the application has "
                                   "not been installed by the administrator of the tenant or "
                                   "consented to by any user in the tenant. You may have sent your "
                                   "authentication request to the wrong tenant.")
        secret = form.get("client_secret")
        if secret is None:
            return self._aad_error(401, "invalid_client", 7000218,
                                   "The request body must contain the following parameter: "
                                   "'client_assertion' or 'client_secret'.")
        if not secrets.compare_digest(secret.encode(), self.cfg.clients[client].encode()):
            return self._aad_error(401, "invalid_client", 7000215,
                                   "Invalid client secret provided. Ensure the secret being sent "
                                   "in the request is the client secret value, not the client "
                                   f"secret ID, for a secret added to app '{client}'.")
        audience = scopes[0][:-len(".default")]
        token, _ = self.issue(client, audience)
        lifetime = self.cfg.token_lifetime
        # The v2.0 endpoint returns expires_in as a number (IMDS returns a string).
        return json_response(200, {"token_type": "Bearer", "expires_in": lifetime,
                                   "ext_expires_in": lifetime, "access_token": token})
