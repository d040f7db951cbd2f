"""vLLM knowledge: flag tables per version (generated from vLLM's parser) and the argument compiler."""
