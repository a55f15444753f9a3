"""What every ARM answer shares: ids, throttle headers, api-version checks, the error
envelope, and the resource SKUs API."""

import re

from conftest import SUB


def test_every_answer_carries_request_and_correlation_ids(emu, rg):
    r = emu.arm("GET", emu.avset_path(rg, "nothing"))
    assert r.status == 404
    assert re.fullmatch(r"[0-9a-f-]{36}", r.header("x-ms-request-id"))
    assert r.header("x-ms-correlation-request-id")
    mine = emu.arm("GET", emu.avset_path(rg, "nothing"),
                   headers={"x-ms-correlation-request-id": "corr-1",
                            "x-ms-client-request-id": "c-1"})
    assert mine.header("x-ms-correlation-request-id") == "corr-1"
    assert mine.header("x-ms-client-request-id") == "c-1"


def test_reads_writes_and_deletes_carry_their_arm_bucket_headers(emu, rg):
    read = emu.arm("GET", emu.avset_path(rg, "s"))
    assert int(read.header("x-ms-ratelimit-remaining-subscription-reads")) < 250
    assert int(read.header("x-ms-ratelimit-remaining-subscription-global-reads")) < 3750
    write = emu.put_avset(rg, "s")
    assert int(write.header("x-ms-ratelimit-remaining-subscription-writes")) < 200
    assert int(write.header("x-ms-ratelimit-remaining-subscription-global-writes")) < 3000
    assert write.header("x-ms-ratelimit-remaining-subscription-reads") is None
    delete = emu.arm("DELETE", emu.avset_path(rg, "s"))
    assert int(delete.header("x-ms-ratelimit-remaining-subscription-deletes")) < 200
    assert int(delete.header("x-ms-ratelimit-remaining-subscription-global-deletes")) < 3000


def test_compute_answers_carry_the_per_operation_buckets(emu, rg):
    put = emu.put_avset(rg, "s")
    assert re.fullmatch(r"Microsoft\.Compute/PutVMSubscriptionMaximum;\d+,"
                        r"Microsoft\.Compute/PutVMResource;\d+",
                        put.header("x-ms-ratelimit-remaining-resource"))
    get = emu.arm("GET", emu.avset_path(rg, "s"))
    assert get.header("x-ms-ratelimit-remaining-resource").startswith(
        "Microsoft.Compute/LowCostGetSubscriptionMaximum;")
    lst = emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Compute/virtualMachines")
    assert re.fullmatch(r"Microsoft\.Compute/HighCostGetSubscriptionMaximum;\d+",
                        lst.header("x-ms-ratelimit-remaining-resource"))
    r = emu.create_vm(rg, "vm1", size="Standard_D2s_v5")
    poll = emu.arm("GET", r.header("Azure-AsyncOperation"))
    assert "Microsoft.Compute/GetOperationSubscriptionMaximum;" in \
        poll.header("x-ms-ratelimit-remaining-resource")
    dealloc = emu.vm_action(rg, "vm1", "deallocate", wait=False)
    assert "DeleteVMSubscriptionMaximum" in dealloc.header("x-ms-ratelimit-remaining-resource")


def test_missing_api_version(emu, rg):
    r = emu.arm("GET", emu.avset_path(rg, "s"), api=None)
    assert r.status == 400
    assert r.error == {"code": "MissingApiVersionParameter",
                       "message": "The api-version query parameter (?api-version=) is required "
                                  "for all requests."}


def test_unsupported_api_version_lists_the_supported_ones(emu, rg):
    r = emu.arm("GET", emu.avset_path(rg, "s"), api="2099-01-01")
    assert r.status == 400
    assert r.error["code"] == "InvalidApiVersionParameter"
    assert r.error["message"] == (
        "The api-version '2099-01-01' is invalid. The supported versions are "
        "'2025-11-01,2025-04-01,2024-11-01,2024-07-01,2024-03-01,2023-09-01'. "
        "Please see https://aka.ms/api-version for more details.")


def test_api_versions_are_checked_per_provider(emu, rg):
    for version in ("2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01",
                    "2025-11-01"):
        assert emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Compute/availabilitySets",
                       api=version).status == 200, version
    for version in ("2023-09-01", "2024-05-01", "2025-05-01", "2025-07-01"):
        assert emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Network/networkInterfaces",
                       api=version).status == 200, version
    assert emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Network/networkInterfaces",
                   api="2024-11-01").error["code"] == "InvalidApiVersionParameter"
    assert emu.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus",
                   api="2024-11-01").status == 400


def test_error_envelope_for_bad_json_and_missing_location(emu, rg):
    r = emu.arm("PUT", emu.avset_path(rg, "s"), headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.error["code"] == "InvalidRequestContent"
    r = emu.arm("PUT", emu.avset_path(rg, "s"), {"properties": {}})
    assert r.status == 400
    assert r.error == {"code": "LocationRequired",
                       "message": "The location property is required for this definition."}
    r = emu.arm("PUT", emu.avset_path(rg, "s"), {"location": "moon"})
    assert r.status == 400 and r.error["code"] == "LocationNotAvailableForResourceType"


def test_unknown_resource_type(emu, rg):
    r = emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Compute/spaceships/x")
    assert r.status == 400 and r.error["code"] == "InvalidResourceType"


def test_bodies_are_pretty_printed_with_crlf(emu, rg):
    r = emu.put_avset(rg, "s")
    assert b"\r\n  \"name\"" in r.body
    assert r.header("Content-Type") == "application/json; charset=utf-8"


def test_any_resource_group_exists(emu, rg):
    r = emu.arm("GET", emu.rg_path(rg), api="2021-04-01")
    assert r.status == 200 and r.json["name"] == rg


def test_skus_for_a_location_with_rdma_capability(emu):
    r = emu.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus?"
                       "$filter=location%20eq%20'eastus'", api="2021-07-01")
    assert r.status == 200
    skus = {s["name"]: s for s in r.json["value"]}
    assert all(s["locations"] == ["eastus"] for s in skus.values())

    def cap(name, what):
        return {c["name"]: c["value"] for c in skus[name]["capabilities"]}[what]
    assert cap("Standard_HB120rs_v3", "RdmaEnabled") == "True"
    assert cap("Standard_HB120rs_v3", "vCPUs") == "120"
    assert cap("Standard_HB120rs_v3", "MemoryGB") == "448"
    assert cap("Standard_HB120-16rs_v3", "vCPUsAvailable") == "16"
    assert cap("Standard_D2s_v5", "RdmaEnabled") == "False"
    assert cap("Standard_A9", "RdmaEnabled") == "True"
    assert skus["Standard_HB120rs_v3"]["family"] == "standardHBrsv3Family"
    for name in ("Standard_HC44rs", "Standard_HC44-16rs", "Standard_HB60rs", "Standard_HB120rs_v2",
                 "Standard_HB176rs_v4", "Standard_HB176-24rs_v4", "Standard_HX176rs",
                 "Standard_HX176-48rs", "Standard_H16", "Standard_H16m", "Standard_A10"):
        assert name in skus, name
    other = emu.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus?"
                           "$filter=location%20eq%20'westeurope'", api="2021-07-01")
    assert {s["locations"][0] for s in other.json["value"]} == {"westeurope"}


def test_request_log_lists_arm_calls(emu, rg):
    start = len(emu.admin("GET", "log?all=1"))
    emu.arm("GET", emu.avset_path(rg, "logme"))
    rows = emu.admin("GET", f"log?since={start}")
    assert [(r["method"], r["path"], r["status"]) for r in rows] == \
        [("GET", emu.avset_path(rg, "logme"), 404)]
    assert "api-version=2024-11-01" in rows[0]["query"] and rows[0]["time"] > 0
