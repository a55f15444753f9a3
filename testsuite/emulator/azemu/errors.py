"""ARM errors: the CloudError envelope and the real message texts.

Message texts follow recorded Azure responses and Microsoft's error tables (see
/work/shared/reference/azure-arm-rest.md). Where a text could not be verified the README
says so; the code and status are then the documented ones.
"""

import json
import urllib.parse


class ArmError(Exception):
    """An ARM error response: {"error": {"code", "message", "target"?, "details"?}}."""

    def __init__(self, status, code, message, target=None, details=None, headers=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.headers = headers or {}

    def error_object(self):
        err = {"code": self.code, "message": self.message}
        if self.target is not None:
            err["target"] = self.target
        if self.details is not None:
            err["details"] = self.details
        return err

    def body(self):
        return {"error": self.error_object()}


# --- ARM front door -------------------------------------------------------------------

def missing_api_version():
    return ArmError(400, "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.")


def invalid_api_version(version, supported):
    listed = ",".join(sorted(supported, reverse=True))
    return ArmError(400, "InvalidApiVersionParameter",
                    f"The api-version '{version}' is invalid. The supported versions are "
                    f"'{listed}'. Please see https://aka.ms/api-version for more details.")


def resource_not_found(rtype, name, rg):
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def invalid_resource_type(namespace, rtype, version):
    return ArmError(400, "InvalidResourceType",
                    f"The resource type '{rtype}' could not be found in the namespace "
                    f"'{namespace}' for api version '{version}'.")


def invalid_namespace(namespace):
    return ArmError(400, "InvalidResourceNamespace",
                    f"The resource namespace '{namespace}' is invalid.")


def method_not_allowed(method):
    return ArmError(405, "MethodNotAllowed",
                    f"The requested resource does not support http method '{method}'.")


def invalid_request_content(detail):
    return ArmError(400, "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: '{detail}'.")


def location_required():
    return ArmError(400, "LocationRequired",
                    "The location property is required for this definition.")


def location_not_available(location, rtype, locations):
    return ArmError(400, "LocationNotAvailableForResourceType",
                    f"The provided location '{location}' is not available for resource type "
                    f"'{rtype}'. List of available regions for the resource type is "
                    f"'{','.join(locations)}'.")


def invalid_resource_location(name, rg, old, new):
    return ArmError(409, "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{old}' in resource group "
                    f"'{rg}'. A resource with the same name cannot be created in location '{new}'. "
                    "Please select a new resource name.")


def subscription_throttled(kind, actor, seconds):
    return ArmError(429, "SubscriptionRequestsThrottled",
                    f"Number of '{kind}' requests for subscription actor '{actor}' exceeded. "
                    f"Please try again after '{seconds}' seconds after additional tokens are "
                    "available. Refer to https://aka.ms/arm-throttling for additional information.",
                    headers={"Retry-After": str(seconds)})


# --- authentication -------------------------------------------------------------------

_WWW_AUTH = 'Bearer authorization_uri="https://login.microsoftonline.com/common", ' \
            'error="invalid_token", error_description="{}"'


def auth_missing():
    return ArmError(401, "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                    headers={"WWW-Authenticate": _WWW_AUTH.format(
                        "The authentication failed because of missing 'Authorization' header.")})


def auth_malformed():
    return ArmError(401, "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid "
                    "format.",
                    headers={"WWW-Authenticate": _WWW_AUTH.format(
                        "The authentication scheme of Bearer is expected.")})


def auth_invalid():
    return ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.",
                    headers={"WWW-Authenticate": _WWW_AUTH.format("The access token is invalid.")})


def auth_expired(expiry_text, now_text):
    return ArmError(401, "ExpiredAuthenticationToken",
                    f"The access token expiry UTC time '{expiry_text}' is earlier than current UTC "
                    f"time '{now_text}'.",
                    headers={"WWW-Authenticate": _WWW_AUTH.format("The access token has expired.")})


def auth_wrong_audience(audience, allowed):
    listed = ",".join(f"'{a}'" for a in allowed)
    return ArmError(401, "InvalidAuthenticationTokenAudience",
                    "The access token has been obtained for wrong audience or resource "
                    f"'{audience}'. It should exactly match with one of the allowed audiences "
                    f"{listed}.",
                    headers={"WWW-Authenticate": _WWW_AUTH.format(
                        "The access token has been obtained for wrong audience or resource.")})


# --- Compute (CRP) --------------------------------------------------------------------

def invalid_parameter(message, target=None):
    return ArmError(400, "InvalidParameter", message, target=target)


def required_parameter(name):
    return invalid_parameter(f"Required parameter '{name}' is missing (null).", target=name)


def vm_size_not_available(size, available):
    return invalid_parameter(
        f"The requested VM size {size} is not available in the current region. The sizes "
        f"available in the current region are: {','.join(available)}.\r\nFind out more on the "
        "available VM sizes in each region at https://aka.ms/azure-regions.", target="vmSize")


def size_not_in_set_cluster(size, available):
    return invalid_parameter(
        f"Unable to create the VM because the requested size {size} is not available in the "
        f"cluster where the availability set is currently allocated. The available sizes are: "
        f"{','.join(available)}. Read more on VM resizing strategy at "
        "https://aka.ms/azure-resizevm.",
        target="vmSize")


def resize_not_in_cluster(size):
    return ArmError(409, "OperationNotAllowed",
                    f"Unable to resize the VM because the requested size {size} is not "
                    "available in the cluster where the VM is currently allocated. To resize "
                    f"your VM to {size} please deallocate (this is Stop operation in the Azure "
                    "portal) and try the resize operation again. Read more on VM resizing "
                    "strategy at "
                    "https://aka.ms/azure-resizevm.")


def property_change_not_allowed(prop):
    return ArmError(409, "PropertyChangeNotAllowed",
                    f"Changing property '{prop}' is not allowed.", target=prop)


def availability_set_not_found(set_id):
    return ArmError(404, "NotFound", f"The Availability Set {set_id} cannot be found.")


def availability_set_in_use(name):
    return ArmError(409, "OperationNotAllowed",
                    f"Availability Set {name} cannot be deleted. Before deleting an Availability "
                    "Set please ensure that it does not contain any VM.")


def availability_set_other_group(set_id, vm_id):
    return invalid_parameter(
        f"The Availability Set '{set_id}' and the Virtual Machine '{vm_id}' must be in the same "
        "resource group.", target="availabilitySet.id")


def availability_set_other_location(set_id, set_location, vm_location):
    return invalid_parameter(
        f"The Availability Set '{set_id}' is in location '{set_location}' and cannot hold a "
        f"Virtual Machine in location '{vm_location}'.", target="availabilitySet.id")


def fault_domain_range(count, low, high):
    return invalid_parameter(
        f"The specified fault domain count {count} must fall in the range {low} to {high}.",
        target="platformFaultDomainCount")


def update_domain_range(count, low, high):
    return invalid_parameter(
        f"The specified update domain count {count} must fall in the range {low} to {high}.",
        target="platformUpdateDomainCount")


def sku_change_not_allowed():
    return ArmError(409, "OperationNotAllowed",
                    "Changing availability set SKU from 'Aligned' to 'Classic' is not allowed.")


def ppg_in_use(name):
    return ArmError(409, "OperationNotAllowed",
                    f"Proximity Placement Group {name} cannot be deleted. Before deleting a "
                    "Proximity Placement Group please ensure that it does not contain any "
                    "resources.")


def custom_data_invalid():
    return invalid_parameter(
        "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 "
        "characters.", target="customData")


def invalid_reference(ref_id, by_id):
    return ArmError(400, "InvalidResourceReference",
                    f"Resource {ref_id} referenced by resource {by_id} was not found. Please make "
                    "sure that the referenced resource exists, and that both resources are in the "
                    "same region.")


def operation_in_progress(op, vm):
    return ArmError(409, "OperationNotAllowed",
                    f"Operation '{op}' is not allowed on VM '{vm}' since another operation is "
                    "in progress.")


def vm_marked_for_deletion(op, vm):
    return ArmError(409, "OperationNotAllowed",
                    f"Operation '{op}' is not allowed on VM '{vm}' since the VM is marked for "
                    "deletion. You can only retry the Delete operation (or wait for an ongoing one "
                    "to complete).")


def vm_deallocated(op, vm):
    return ArmError(409, "OperationNotAllowed",
                    f"Operation '{op}' is not allowed on VM '{vm}' since the VM is either "
                    "deallocated or marked to be deallocated.")


def quota_exceeded(family_text, location, limit, usage, required, sub, family):
    """The per-family (or Total Regional) cores quota failure, as CRP words it."""
    new_limit = usage + required
    params = ('{"SubscriptionId":"%s","Command":"openQuotaApprovalBlade","QuotaRequests":'
              '[{"RegionName":"%s","NewLimit":%d,"Metadata":{"PreviousLimit":%d,"Type":"%s",'
              '"FamilyName":"%s"}}]}') % (sub, location, new_limit, limit,
                                          "ByFamily" if family else "Regional", family or "")
    link = ("https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/UsageAndQuota.ReactView"
            "/Parameters/" + urllib.parse.quote(params, safe=":,"))
    return ArmError(409, "OperationNotAllowed",
                    f"Operation could not be completed as it results in exceeding approved "
                    f"{family_text} quota. Additional details - Deployment Model: Resource "
                    f"Manager, Location: {location}, Current Limit: {limit}, Current Usage: "
                    f"{usage}, Additional Required: {required}, (Minimum) New Limit Required: "
                    f"{new_limit}. Submit a request for Quota increase at {link} by specifying "
                    "parameters listed in the \u2018Details\u2019 section for deployment to "
                    "succeed. Please read more about quota limits at https://docs.microsoft.com/"
                    "en-us/azure/azure-supportability/per-vm-quota-requests")


def compute_throttled(bucket_name, allowed, measured, start_text, end_text, seconds):
    detail = json.dumps({"operationGroup": bucket_name, "startTime": start_text,
                         "endTime": end_text, "allowedRequestCount": allowed,
                         "measuredRequestCount": measured}, separators=(",", ":"))
    return ArmError(429, "OperationNotAllowed",
                    "The server rejected the request because too many requests have been received "
                    "for this subscription.",
                    details=[{"code": "TooManyRequests", "target": bucket_name, "message": detail}],
                    headers={"Retry-After": str(seconds)})


# --- asynchronous failures (operation status "error") ----------------------------------

ALLOCATION_FAILED_SET = (
    "Allocation failed. Please try reducing the VM size or number of VMs, retry later, or try "
    "deploying to a different Availability Set or different Azure location.")
ALLOCATION_FAILED_REGION = (
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this "
    "region. Read more about improving likelihood of allocation success at "
    "http://aka.ms/allocation-guidance")
OPERATION_PREEMPTED = "Operation execution has been preempted by a more recent operation."


# --- Network (NRP) --------------------------------------------------------------------

def nic_in_use(nic_id, vm_id):
    return ArmError(400, "NicInUse",
                    f"Network Interface {nic_id} is used by existing resource {vm_id}. In order to "
                    "delete the network interface, it must be dissociated from the resource. To "
                    "learn more, see aka.ms/deletenic.", details=[])


def nic_attached_elsewhere(nic_id, vm_id):
    return ArmError(400, "NicInUse",
                    f"Network Interface {nic_id} is used by existing resource {vm_id}. A network "
                    "interface can be attached to one virtual machine only.", details=[])


def ip_in_use(ipconfig_id, ip, other):
    return ArmError(400, "PrivateIPAddressInUse",
                    f"IP configuration {ipconfig_id} is using the private IP address {ip} which is "
                    f"already allocated to resource {other}.", details=[])


def ip_not_in_subnet(ipconfig_id, ip, prefix):
    return ArmError(400, "PrivateIPAddressNotInSubnet",
                    f"IP configuration {ipconfig_id} is using the private IP address {ip} which "
                    f"does not belong to the address prefix {prefix} of the subnet.", details=[])


def subnet_full(prefix):
    return ArmError(400, "SubnetIsFull",
                    f"Subnet with address prefix {prefix} does not have enough capacity for 1 IP "
                    "addresses.", details=[])


def nic_needs_ip_configuration(nic_id):
    return ArmError(400, "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                    f"Network interface {nic_id} must have at least one IP configuration.",
                    details=[])
