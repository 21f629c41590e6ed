"""Python-backend model files copied into generated pipeline models (imported by Triton, not by repogen)."""
