from backlot.services.cli.app import main

main()
