"""The web side: one aiohttp listener (``YIHU_WEB_LISTEN``) for health and metrics, the staff desk, and in
``yihu demo`` the village simulator. Each part adds its routes to the application :func:`bot.web.app.build_web_app`
makes; pages are jinja2 templates (package data under ``templates/``), static files under ``static/``.
"""
