"""Run one DAG for real with ``dag.test()`` and print its outcome as JSON.

Used by the ``run_dag`` fixture in a subprocess, so that each run gets its own
AIRFLOW_HOME and LIQUIDITY_* settings (Airflow reads its configuration at import time).

Usage: python tests/support/dag_runner.py DAG_ID [CONF_JSON]
"""

import json
import sys


def main() -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import DAGS_FOLDER

    dag_id = sys.argv[1]
    conf = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    bag = DagBag(dag_folder=DAGS_FOLDER)
    if bag.import_errors:
        print(json.dumps({"state": "import_error", "errors": bag.import_errors}))
        return 1
    dag = bag.get_dag(dag_id)
    run = dag.test(run_conf=conf)
    tasks = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[key] = str(ti.state) if ti.state is not None else None
    print("DAG_RESULT " + json.dumps({"state": str(run.state), "tasks": tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
