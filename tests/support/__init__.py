"""What the test suites share (the only package tests.unit, tests.integration, tests.infrastructure and tests.e2e
may all import): the fake object store (store), hand-built archives (tars), the loopback moto server (moto),
project sources and releases (projects), the validation gate's test helpers (gate), and the release signing key
every test signs with and trusts (signing)."""
