"""AWS CDK constructs for dagsync: one concern per module, composed by `infra.stack.DagSyncStack`."""
