"""Agent backends behind one interface (``base.Agent``): ``rules`` offline, ``openai`` an LLM."""
