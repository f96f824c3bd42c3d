using RetriBooru.Cli;

return CliApp.Run(args);
