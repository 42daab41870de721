"""Settings, model providers and store access shared by every layer."""
