"""The live dashboard (CONTRACT 12): TypeScript in `src/`, built by `npm run build` here (or
`./run dashboard`) into `static/`, which is committed and which the server serves at `GET /`."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
