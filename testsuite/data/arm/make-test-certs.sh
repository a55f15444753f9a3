#!/bin/sh
# Regenerate the TEST-ONLY TLS material of the ARM client's unit tests:
#   ca.pem            the CA test_arm_client trusts through CaBundle
#   server.pem/.key   the test server's certificate (127.0.0.1, localhost)
#   other-ca.pem      an unrelated CA: trusting only it must fail the handshake
# None of this protects anything; the keys are public on purpose.
set -eu
cd "$(dirname "$0")"
days=36500
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/ca.key" -out ca.pem -days $days \
	-subj "/CN=azrdma unit test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out "$tmp/server.csr" -subj "/CN=127.0.0.1"
printf '%s\n' "basicConstraints=CA:FALSE" \
	"keyUsage=critical,digitalSignature" \
	"extendedKeyUsage=serverAuth" \
	"subjectAltName=IP:127.0.0.1,DNS:localhost" > "$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey "$tmp/ca.key" \
	-CAserial "$tmp/ca.srl" -CAcreateserial -out server.pem -days $days -extfile "$tmp/ext"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/other.key" -out other-ca.pem -days $days \
	-subj "/CN=azrdma unit test unrelated CA" \
	-addext "basicConstraints=critical,CA:TRUE"
