"""A FastAPI app behind aiwaf's ASGI middleware (run: ``uvicorn fastapi_app:app``)."""

from fastapi import FastAPI, Request, WebSocket

from aiwaf.asgi import AiwafMiddleware


def create_app(settings=None):
    app = FastAPI()

    @app.get("/")
    async def home():
        return {"hello": "world"}

    @app.post("/api/notes")
    async def notes(request: Request):
        return {"saved": await request.json()}

    @app.websocket("/ws")
    async def echo(ws: WebSocket):
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close()

    # the two lines: settings from AIWAF_* environment variables when none are given
    app.add_middleware(AiwafMiddleware, settings=settings)
    return app


app = create_app()
