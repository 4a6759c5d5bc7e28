"""A regtest Bitcoin node for tests whose every block is connected by Bitcoin Core's libbitcoinkernel."""
