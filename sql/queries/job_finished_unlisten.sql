-- job_finished_unlisten: end the subscription of job_finished_listen.
SELECT pgqueue.result_wait_end();
UNLISTEN pgqueue_finished
