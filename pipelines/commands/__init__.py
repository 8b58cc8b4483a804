"""One click command per module; :mod:`polyvae.pipelines.cli` attaches them."""
