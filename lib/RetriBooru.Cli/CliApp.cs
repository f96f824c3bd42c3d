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
            config.AddBranch("metrics", metrics =>
            {
                metrics.SetDescription("Identity similarity, prompt consistency, SWD and leakage scores.");
                metrics.AddCommand<MetricsBenchCommand>("bench").WithDescription("Images per second for each embedder, the VQA probe and the full SWD pipeline.");
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
