"""A Flask app behind aiwaf's WSGI middleware (run: ``flask --app flask_app run``)."""

from flask import Flask, jsonify, request

from aiwaf.wsgi import AiwafMiddleware


def create_app(settings=None):
    app = Flask(__name__)

    @app.get("/")
    def home():
        return "<p>hello</p>"

    @app.post("/api/notes")
    def notes():
        return jsonify(saved=request.get_json(force=True))

    # the two lines: settings from AIWAF_* environment variables when none are given
    app.wsgi_app = AiwafMiddleware(app.wsgi_app, settings=settings)
    return app


if __name__ == "__main__":
    create_app().run()
