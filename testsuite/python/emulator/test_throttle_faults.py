"""Throttling (ARM token buckets, Compute operation groups) and injected faults."""

import json
import time
import urllib.error

import pytest

from conftest import SUB


def test_arm_write_bucket_runs_out_with_429_and_retry_after(make_emulator, rg):
    emu = make_emulator({"throttle": {"arm": {"writes": {"burst": 3, "refill": 1}}}})
    path = emu.avset_path(rg, "s")
    remaining = [emu.put_avset(rg, "s").header("x-ms-ratelimit-remaining-subscription-writes")
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    r = emu.arm("PUT", path, {"location": "eastus"})
    assert r.status == 429
    assert r.header("Retry-After") == "1"
    assert r.error["code"] == "SubscriptionRequestsThrottled"
    assert r.error["message"].startswith("Number of 'write' requests for subscription actor '")
    assert r.error["message"].endswith(
        "' exceeded. Please try again after '1' seconds after additional tokens are available. "
        "Refer to https://aka.ms/arm-throttling for additional information.")
    # Reads have a bucket of their own.
    assert emu.arm("GET", path).status == 200
    time.sleep(1.1)
    assert emu.arm("PUT", path, {"location": "eastus"}).status == 200


def test_arm_buckets_are_per_principal_with_a_global_bucket(make_emulator, rg):
    emu = make_emulator({"throttle": {"arm": {"reads": {"burst": 2, "refill": 0.1},
                                              "globalFactor": 2}}})
    mi = emu.imds({"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
                  headers={"Metadata": "true"}).json["access_token"]
    path = emu.avset_path(rg, "s")
    assert [emu.arm("GET", path).status for _ in range(3)] == [404, 404, 429]
    # Another principal still has its own bucket, but the global one (2 x 2) runs dry.
    assert [emu.arm("GET", path, token=mi).status for _ in range(3)] == [404, 404, 429]
    r = emu.arm("GET", path, token=mi)
    assert r.status == 429 and int(r.header("Retry-After")) >= 1


def test_compute_resource_bucket_gives_operation_not_allowed(make_emulator, rg):
    emu = make_emulator({"throttle": {"compute": {
        "LowCostGet": {"resource": {"burst": 2, "refill": 0.5}}}}})
    emu.put_avset(rg, "s")
    path = emu.avset_path(rg, "s")
    first = emu.arm("GET", path)
    assert first.header("x-ms-ratelimit-remaining-resource").endswith(
        ",Microsoft.Compute/LowCostGetResource;1")
    assert emu.arm("GET", path).status == 200
    r = emu.arm("GET", path)
    assert r.status == 429
    assert r.header("Retry-After") == "2"
    assert r.header("x-ms-ratelimit-remaining-resource") == "Microsoft.Compute/LowCostGetResource;0"
    assert r.error["code"] == "OperationNotAllowed"
    assert r.error["message"] == ("The server rejected the request because too many requests have "
                                  "been received for this subscription.")
    detail = r.error["details"][0]
    assert detail["code"] == "TooManyRequests" and detail["target"] == "LowCostGetResource"
    inner = json.loads(detail["message"])
    assert inner["operationGroup"] == "LowCostGetResource"
    assert inner["allowedRequestCount"] == 2 and inner["measuredRequestCount"] == 3
    assert {"startTime", "endTime"} <= set(inner)
    # Another resource is not affected.
    assert emu.arm("GET", emu.avset_path(rg, "other")).status == 404


def test_compute_subscription_bucket(make_emulator, rg):
    emu = make_emulator({"throttle": {"compute": {
        "PutVM": {"subscription": {"burst": 1, "refill": 0.01}}}}})
    assert emu.put_avset(rg, "a").header("x-ms-ratelimit-remaining-resource").startswith(
        "Microsoft.Compute/PutVMSubscriptionMaximum;0,")
    r = emu.arm("PUT", emu.avset_path(rg, "b"), {"location": "eastus"})
    assert r.status == 429 and r.error["details"][0]["target"] == "PutVMSubscriptionMaximum"


# --- faults ---------------------------------------------------------------------------

def test_status_fault_hits_the_next_n_matching_requests(emu, rg):
    emu.admin("POST", "faults", {"method": "PUT", "path": "/availabilitySets/flaky$", "count": 2,
                                 "status": 409, "code": "Conflict", "message": "busy"})
    path = emu.avset_path(rg, "flaky")
    assert emu.arm("GET", path).status == 404  # other methods pass
    for _ in range(2):
        r = emu.arm("PUT", path, {"location": "eastus"})
        assert r.status == 409 and r.error == {"code": "Conflict", "message": "busy"}
        assert r.header("x-ms-request-id")
    assert emu.arm("PUT", path, {"location": "eastus"}).status == 200
    log = emu.admin("GET", "log")
    assert [e["status"] for e in log if e["path"] == path][-3:] == [409, 409, 200]


def test_429_fault_has_retry_after(emu, rg):
    emu.admin("POST", "faults", {"method": "GET", "path": "availabilitySets/t429", "status": 429,
                                 "code": "TooManyRequests", "message": "slow down",
                                 "retryAfter": 7})
    r = emu.arm("GET", emu.avset_path(rg, "t429"))
    assert r.status == 429 and r.header("Retry-After") == "7"


def test_drop_fault_closes_the_connection(emu, rg):
    emu.admin("POST", "faults",
              {"method": "GET", "path": "availabilitySets/dropme", "action": "drop"})
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        emu.arm("GET", emu.avset_path(rg, "dropme"))
    assert emu.arm("GET", emu.avset_path(rg, "dropme")).status == 404
    assert [e["status"] for e in emu.admin("GET", "log")
            if e["path"].endswith("/dropme")][-2:] == [0, 404]


def test_delay_fault(emu, rg):
    emu.admin("POST", "faults",
              {"path": "availabilitySets/slow", "action": "delay", "seconds": 0.6})
    t = time.monotonic()
    assert emu.arm("GET", emu.avset_path(rg, "slow")).status == 404
    assert time.monotonic() - t >= 0.6
    t = time.monotonic()
    emu.arm("GET", emu.avset_path(rg, "slow"))
    assert time.monotonic() - t < 0.5


def test_slow_failure_waits_then_answers_the_error(emu, rg):
    emu.admin("POST", "faults", {"method": "GET", "path": "availabilitySets/slowfail",
                                 "status": 409, "code": "Conflict", "message": "late",
                                 "seconds": 0.6})
    t = time.monotonic()
    r = emu.arm("GET", emu.avset_path(rg, "slowfail"))
    assert time.monotonic() - t >= 0.6
    assert r.status == 409 and r.error["code"] == "Conflict"


def test_fault_seconds_are_checked(emu):
    for bad in ({"status": 500, "seconds": -1},
                {"action": "asyncFail", "seconds": 1}):
        r = emu.request("POST", "/_emulator/faults", bad)
        assert r.status == 400 and "seconds" in r.json["error"], (bad, r)


def test_async_fail_fault_fails_the_operation(emu, rg):
    emu.admin("POST", "faults", {"method": "PUT", "path": "virtualMachines/af1$",
                                 "action": "asyncFail", "code": "OSProvisioningTimedOut",
                                 "message": "guest did not start"})
    r = emu.create_vm(rg, "af1", size="Standard_D2s_v5")
    assert r.status == 201
    assert r.final["status"] == "Failed"
    assert r.final["error"] == {"code": "OSProvisioningTimedOut", "message": "guest did not start"}


def test_faults_apply_to_the_token_endpoints(emu):
    emu.admin("POST", "faults", {"path": "/oauth2/token", "status": 503,
                                 "code": "temporarily_unavailable", "message": "try later"})
    r = emu.imds({"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
                 headers={"Metadata": "true"})
    assert r.status == 503 and r.json == {"error": "temporarily_unavailable",
                                          "error_description": "try later"}


def test_reset_forgets_faults(emu, rg):
    emu.admin("POST", "faults", {"path": "availabilitySets/gone", "status": 500, "count": 5})
    assert len(emu.admin("GET", "faults")) == 1
    emu.admin("POST", "reset")
    assert emu.admin("GET", "faults") == []
    assert emu.arm("GET", emu.avset_path(rg, "gone")).status == 404


def test_bad_fault_is_rejected(emu):
    r = emu.request("POST", "/_emulator/faults", {"path": "(", "status": 500})
    assert r.status == 400 and "regex" in r.json["error"]


def test_scenario_faults_and_latency(make_emulator, rg):
    emu = make_emulator({"timing": {"latency": 0.3},
                         "faults": [{"method": "GET", "path": "availabilitySets/sc",
                                     "status": 500}]})
    t = time.monotonic()
    r = emu.arm("GET", emu.avset_path(rg, "sc"))
    assert r.status == 500 and time.monotonic() - t >= 0.3
    assert emu.arm("GET", emu.avset_path(rg, "sc")).status == 404
    emu.admin("POST", "timing", {"latency": 0})
    t = time.monotonic()
    emu.arm("GET", emu.avset_path(rg, "sc"))
    assert time.monotonic() - t < 0.3
    assert emu.admin("GET", "timing")["latency"] == 0


def test_invalid_timing_is_rejected_whole(emu):
    r = emu.request("POST", "/_emulator/timing", {"create": 1, "nonsense": 2})
    assert r.status == 400
    assert emu.admin("GET", "timing")["create"] != 1


def test_list_subscription_vms_is_high_cost(emu):
    r = emu.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines")
    assert r.header("x-ms-ratelimit-remaining-resource").startswith(
        "Microsoft.Compute/HighCostGetSubscriptionMaximum;")


def test_realistic_timings(make_emulator):
    emu = make_emulator(args=["--realistic", "--timing", "delete=5"])
    timing = emu.admin("GET", "timing")
    durations = [timing[k] for k in ("create", "start", "deallocate", "delete")]
    assert durations == [60, 45, 30, 5]
    assert timing["latency"] > 0
