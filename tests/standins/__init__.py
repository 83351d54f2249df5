"""Local stand-ins for the servers datasets are fetched from (Hugging Face Hub, plain HTTP
file hosts). Test infrastructure: threads on 127.0.0.1, started and stopped by fixtures."""
