import requests
from asyncflow import Task, Flow
def post_to_slack(task, old_state, new_state):
    if new_state.is_retrying():
        msg = "Task {0} failed and is retrying at {1}".format(task, new_state.start_time)
        # replace URL with your Slack webhook URL
        requests.post("https://XXXXX", json={"text": msg})
    return new_state
t = Task(state_handlers=[post_to_slack])
flow = Flow(name="state-handler-demo", tasks=[t])
flow.run() # the notifier is never run
