from portctl.cli import main

main()
