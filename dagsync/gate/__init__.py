"""The validation gate: turns the current manifest into a release, or refuses it with a reason.
Built on `dagsync.core` only; the validator Lambda (`dagsync.lambdas.validator`) wires it."""
