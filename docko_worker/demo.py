"""placeholder"""
def run_demo(*, jobs: int, workers: int | None, failure_rate: float) -> int:
    raise NotImplementedError
