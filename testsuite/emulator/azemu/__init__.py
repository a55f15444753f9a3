"""azemu: a local, faithful Azure (ARM, AAD token endpoint, IMDS) for the azrdma test world.

The package is split by concern:
  config    command line, scenario file, defaults
  tls       CA and server certificate via the openssl CLI
  state     the persistent JSON world and its lock
  httpserv  HTTPS/HTTP servers and the request/response types
  arm       ARM front door: routing, auth, api-version, throttling, faults, request log
  auth      token issuing (IMDS, AAD v2.0) and validation
  throttle  ARM and Compute (CRP) token buckets
  faults    injected failures
  errors    the ARM error envelope and Azure's message texts
  ops       long-running operations and their scheduler
  catalog   VM sizes;  skus  the Resource SKUs API
  compute   virtual-machine requests and their operation status
  placement fabrics (availability-set pinning), capacity and core quota
  lifecycle what completes an operation; VM hosts booted, torn down, reconciled
  groups    availability sets and proximity placement groups
  network   network interfaces and address pools
  host      VMs booted as network-namespace hosts
  admin     the /_emulator/ API
"""
