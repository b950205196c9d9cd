"""The embedded default (`dagsync local up`), the processes it starts for the demo and the tests, and `make demo`."""
