from lockgate.cli.main import main

main()
