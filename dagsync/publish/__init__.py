"""The publisher workflow (what CI runs): immutable archives, the catalog, the manifest, waiting for the release,
rollback, history and the deployment view. Built on `dagsync.core` only."""
