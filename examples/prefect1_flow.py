"""A Prefect 1.x flow, as its documentation writes one, with ``prefect`` replaced by ``asyncflow``.

Operators build tasks (``total = n * price + fee`` and ``total > 100`` are tasks), the run reads
keys the caller put in the context, a ``case`` branches on an operator task, ``t["key"]``
indexes a result, ``a | b`` orders two tasks, and the graph API edits the flow (``replace``,
``update``, iteration, equality, ``get_tasks``) before it runs. A ``manual_only`` task waits
for approval and is resumed the 1.x ways: ``task_states={task: Resume()}`` or
``context(resume=True)``.

Expected output contains:
    tasks in order: fixed_fee, n, price, Mul, Add,
    then: GreaterThan, case(True), invoice, invoice['id'], audit, send
    parameters: ['n', 'price']
    a copy is equal: True
    total for 3 x 40: 125
    invoice: INV-7 for 125 (team billing, flow invoicing)
    receipt id: INV-7
    audit ran after the invoice: audited INV-7
    send: Paused, so the run ends Cancelled
    resumed in task_states: sent INV-7 -> Success
    resumed by context.resume: sent INV-7
    small order: invoice Skipped, audit Skipped
    after replace: total for 3 x 40 with a fee of 0: 120
    after update: 12 tasks, report = 'report for billing'
"""

from __future__ import annotations

from typing import Any

from asyncflow import Flow, Parameter, case, context, task
from asyncflow.engine.state import Resume, Skipped
from asyncflow.triggers import manual_only


@task
def invoice(total: float) -> dict[str, Any]:
    # Task code reads the run's keys and the caller's, as with ``prefect.context``.
    number = f"INV-{context.invoice_seq}"
    note = f"{number} for {total} (team {context.team}, flow {context.flow_name})"
    return {"id": number, "note": note}


@task
def audit() -> str:
    return f"audited INV-{context.invoice_seq}"


@task(trigger=manual_only)  # waits for a human: Paused until resumed
def send(receipt: str) -> str:
    return f"sent {receipt}"


@task
def fixed_fee() -> int:
    return 5


@task
def no_fee() -> int:
    return 0


@task
def report() -> str:
    return f"report for {context.team}"


with Flow("invoicing") as flow:
    n = Parameter("n")
    price = Parameter("price", default=40)
    fee = fixed_fee()
    total = n * price + fee  # Mul, then Add: operator tasks
    with case(total > 100, True):  # GreaterThan drives the branch
        bill = invoice(total)
    receipt_id = bill["id"]  # GetItem
    checked = bill | audit  # audit runs after the invoice (a state dependency)
    sent = send(receipt_id)


def main() -> None:
    listed = [t.name for t in flow]  # iterating a flow: its tasks in topological order
    print("tasks in order:", ", ".join(listed[:5]) + ",")
    print("then:", ", ".join(listed[5:]))
    print("parameters:", sorted(p.name for p in flow.get_tasks(task_type=Parameter)))
    print("a copy is equal:", flow.copy() == flow)

    with context(team="billing", invoice_seq=7):  # the caller's keys reach every task
        state = flow.run(parameters={"n": 3})
    results = state.result
    print("total for 3 x 40:", results[total].result)
    print("invoice:", results[bill].result["note"])
    print("receipt id:", results[receipt_id].result)
    print("audit ran after the invoice:", results[checked].result)
    print(f"send: {type(results[sent]).__name__}, so the run ends {type(state).__name__}")

    with context(team="billing", invoice_seq=7):
        state = flow.run(parameters={"n": 3}, task_states={sent: Resume("approved by Ada")})
    print("resumed in task_states:", state.result[sent].result, "->", type(state).__name__)
    with context(team="billing", invoice_seq=7, resume=True):
        state = flow.run(parameters={"n": 3})
    print("resumed by context.resume:", state.result[sent].result)

    with context(team="billing", invoice_seq=8):
        small = flow.run(parameters={"n": 1}).result
    skipped = [isinstance(small[t], Skipped) for t in (bill, checked)]
    print("small order: invoice {}, audit {}".format(*("Skipped" if s else "ran" for s in skipped)))

    flow.replace(fee, no_fee)  # the graph API: swap a task, keep its edges
    with context(team="billing", invoice_seq=9):
        state = flow.run(parameters={"n": 3})
    print("after replace: total for 3 x 40 with a fee of 0:", state.result[total].result)

    with Flow("reporting") as extra:
        summary = report()
    flow.update(extra)  # take every task and edge of another flow
    with context(team="billing", invoice_seq=10):
        state = flow.run(parameters={"n": 3})
    print(f"after update: {len(flow.tasks)} tasks, report = {state.result[summary].result!r}")


if __name__ == "__main__":
    main()
