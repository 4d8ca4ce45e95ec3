"""Chapter 6: streaming inference pipelines.

Many streams, one accelerator: chapter 4's sessions and chapter 5's
gRPC service feed one cross-stream batching scheduler, behind bounded
queues, with graceful degradation under load and end-to-end traces.
"""
