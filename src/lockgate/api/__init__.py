"""Wire formats at the edge: OpenAI and Anthropic bodies <-> the internal chat model."""
