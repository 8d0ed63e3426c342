"""TypeScript from the application router: schema types, a tRPC `AppRouter` and a procedure table.

python -m client_gen [--out DIR]     write DIR/schemas.ts, DIR/router.ts, DIR/procedures.ts
python -m client_gen --check         fail when the committed files are stale
"""

from client_gen.collect import Api, collect
from client_gen.render import render_all

__all__ = ["Api", "collect", "render_all"]
