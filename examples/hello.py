"""The README's example: parameters, artifacts, metrics, a loop and a condition.

Regenerate hello.yaml with:  python examples/hello.py
(the end-to-end tests check that the committed YAML is what kfp compiles).
"""
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Metrics, Output


@dsl.component
def make_numbers(n: int, numbers: Output[Dataset]):
    with open(numbers.path, 'w') as f:
        f.write('\n'.join(str(i) for i in range(1, n + 1)))
    numbers.metadata['count'] = n


@dsl.component
def power(numbers: Input[Dataset], exponent: int) -> int:
    return sum(int(line) ** exponent for line in open(numbers.path))


@dsl.component
def report(totals: List[int], metrics: Output[Metrics]) -> str:
    for i, t in enumerate(totals, start=1):
        metrics.log_metric(f'sum_of_powers_{i}', t)
    return f'sums of powers: {totals}'


@dsl.component
def celebrate(message: str):
    print(f'*** {message} ***')


@dsl.pipeline(name='hello-oxflow', description='A first Oxflow run.')
def hello(n: int = 10, exponents: List[int] = [1, 2, 3]) -> str:
    data = make_numbers(n=n)
    with dsl.ParallelFor(items=exponents) as e:
        p = power(numbers=data.outputs['numbers'], exponent=e)
    r = report(totals=dsl.Collected(p.output))
    with dsl.If(n > 5):
        celebrate(message=r.outputs['Output'])
    return r.outputs['Output']


if __name__ == '__main__':
    compiler.Compiler().compile(hello, __file__.replace('.py', '.yaml'))
