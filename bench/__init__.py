"""kefu's benchmarks (bench/README.md): `python bench/pipeline.py`, `python bench/bot.py`."""
