-- job_finished_unlisten: stop the subscription of job_finished_listen.
UNLISTEN pgqueue_finished
