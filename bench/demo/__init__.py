"""``tracetriage demo``: the whole product in one command, with nothing but the package installed."""
