"""Chapter 3: the device model, batching, memory and cold starts."""
