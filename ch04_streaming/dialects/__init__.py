"""Wire dialects: the providers' protocols over one session core."""
