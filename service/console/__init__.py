"""The operators' console at /console, served by the API process: server-rendered pages
(Jinja2, templates/) with a little hand-written script (static/console.js).

Every page and action calls the same use cases (service/usecases/) with the same roles and
rate limits as /api/v1 (service/console/web.py guards each one); sign-in and its cookie are
service/console/session.py; `install` (service/console/mount.py) adds it to the API's app.
The console is a door of its own: it imports no other door.
"""
