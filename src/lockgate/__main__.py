from lockgate.cli.main import app

app()
