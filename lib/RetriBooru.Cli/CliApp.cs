using RetriBooru.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli;

/// <summary>Builds the command tree; tests call <see cref="Run"/> in-process.</summary>
public static class CliApp
{
    public static int Run(string[] args, IAnsiConsole? console = null)
    {
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("retribooru");
            if (console is not null) config.ConfigureConsole(console);
            config.SetExceptionHandler((exception, _) =>
            {
                var target = console ?? AnsiConsole.Console;
                target.MarkupLine($"[red]error:[/] {Markup.Escape(exception.GetBaseException().Message)}");
                return exception is CommandParseException or CommandRuntimeException ? ExitCodes.Usage : ExitCodes.Failure;
            });
            config.AddCommand<DoctorCommand>("doctor")
                .WithDescription("Check that TorchSharp loads, print versions, device, threads and a matmul benchmark.");
            config.AddCommand<RunsCommand>("runs")
                .WithDescription("List experiment runs (newest first) with their summary metrics.");
            config.AddBranch("dataset", dataset =>
            {
                dataset.SetDescription("Build, generate and inspect RetriBooru datasets.");
                dataset.AddCommand<DatasetSynthCommand>("synth").WithDescription("Generate the synthetic anime world (RetriBooru-Synth) and build it into a dataset.");
                dataset.AddCommand<DatasetBuildCommand>("build").WithDescription("Ingest a Danbooru-style folder into a dataset with leakage-free reference manifests.");
                dataset.AddCommand<DatasetStatsCommand>("stats").WithDescription("Print a built dataset's stats as tables.");
                dataset.AddCommand<DatasetBenchCommand>("bench").WithDescription("Measure images/s generated and ingested.");
            });
        });
        return app.Run(args);
    }
}

/// <summary>Exit codes shared by every verb.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int TorchUnavailable = 3;
    public const int Interrupted = 130;
}
