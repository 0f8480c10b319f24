# Every target creates .venv itself when it is missing, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
# Test processes (pytest-xdist): files are spread over them, each file's tests stay in one (their shared stacks).
TEST_WORKERS ?= 2

.PHONY: venv demo test test-fast lint format bench bench-research bench-power bench-power-universe bench-skill-gate \
	bench-decay bench-promotion clean

$(BIN)/ktrdr: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned, and held at the pin while the rest resolves: left open, pip replaced the CPU build with
	# torch 2.14.1 and its CUDA libraries (several GB of nvidia-* wheels) when the project was installed.
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	echo '$(TORCH_PIN)' > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install -q -c $(VENV)/torch-pin.txt -e '.[dev]'
	touch $(BIN)/ktrdr

venv: $(BIN)/ktrdr

# The demo shows a whole cycle's honest evaluation (walk-forward, PSR/DSR, the lockbox): gates are bypassed, and
# the report says what each would have decided. Without --bypass-gates, exit 3 means a gate stopped the cycle.
# `make demo UNIVERSE=SP500_20` runs the cycle on a universe instead: one model across its 20 stocks (issue 24).
demo: venv
	$(BIN)/ktrdr agent run --bypass-gates $(if $(UNIVERSE),--universe $(UNIVERSE)) || test $$? -eq 3

# lint-imports holds the layers (pyproject.toml [tool.importlinter], docs/architecture.md) before the suite runs.
test: venv
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

lint: venv
	$(BIN)/ruff check agent_pipeline tests bench
	$(BIN)/ruff format --check agent_pipeline tests bench
	$(BIN)/mypy agent_pipeline
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format agent_pipeline tests bench
	$(BIN)/ruff check --fix agent_pipeline tests bench

# bench_research.py and bench_power.py are left out: they run hundreds of research cycles (make bench-research,
# make bench-power).
bench: venv
	@for b in bench/bench_*.py; do case $$b in bench/bench_research.py|bench/bench_power.py|bench/bench_promotion.py) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Optimiser against random, 24 cycles per arm on every bundled series, a random walk and SP500_20 in both portfolio
# modes (issues 9, 24; long).
bench-research: venv
	$(BIN)/python bench/bench_research.py

# The loop's power on planted edges against random search, and its false discoveries on noise (issue 14; long).
bench-power: venv
	$(BIN)/python bench/bench_power.py

# Power on planted 20-symbol universes (issue 24): independent noise, then a market factor of correlation 0.3.
UNIVERSE_POWER := --universe-size 20 --bars 2520 --tuning-seeds "" --strengths 1.0 --trend-strengths 0.5 --jobs 3
bench-power-universe: venv
	$(BIN)/python bench/bench_power.py $(UNIVERSE_POWER) --correlation 0 --results bench/results/power_universe_c0.json
	$(BIN)/python bench/bench_power.py $(UNIVERSE_POWER) --correlation 0.3 --results bench/results/power_universe_c0.3.json

# False promotions on 20 random walks and a 20-symbol null universe, and what promotion costs the planted edges of the
# power table on its held-out seeds (issue 25; long: about 40 min on 2 cores).
bench-promotion: venv
	$(BIN)/python bench/bench_promotion.py

# The training gate against chance: 20 random walks and the planted edges, one walk-forward training each (issue 23).
bench-skill-gate: venv
	$(BIN)/python bench/bench_skill_gate.py

# The decay alarm on planted reversals: an edge that continues, turns or dies at forward bar 100 (issue 27; seconds).
bench-decay: venv
	$(BIN)/python bench/bench_decay.py

clean:
	rm -rf $(VENV) .ktrdr .pytest_cache .mypy_cache .ruff_cache
