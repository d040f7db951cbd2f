"""vllm-fleet domain: typed configs, catalogs and the offline engine (no Pulumi resources here)."""
