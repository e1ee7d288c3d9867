"""pgqueue as a Django app: add ``"pgqueue.contrib.django"`` to ``INSTALLED_APPS``.

- ``manage.py migrate`` applies pgqueue's schema through :func:`pgqueue.migrate`
  on Django's connection (:mod:`.schema`), so it is the same schema, recorded
  in the same version table, as ``pgqueue migrate`` makes; either can run
  first, the other then finds nothing to do.
- ``manage.py pgqueue_worker`` runs a worker with Django set up, for the tasks
  of every installed app's ``tasks`` module (or the registries that
  ``PGQUEUE["TASKS"]`` names), closing Django's database connections in the
  job's thread before and after each job, as Django does around a request.
- Settings live in one ``PGQUEUE`` dict (:mod:`.conf`).
- With ``django.contrib.admin`` installed, a read-only admin lists the jobs
  (:mod:`.admin`, over the unmanaged model :class:`.models.Job`).

Enqueue with Django's own connection: ``send_receipt.enqueue(connection, ...)``
inside ``transaction.atomic()`` commits or rolls back with the block.
"""
