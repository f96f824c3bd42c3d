using RetriBooru.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli;

/// <summary>Builds the command tree; tests call <see cref="Run"/> in-process.</summary>
public static class CliApp
{
    public static int Run(string[] args, IAnsiConsole? console = null) => Run(args, console, interceptor: null);

    /// <summary>
    /// The settings a command line binds to, validated, without running the verb: how tests check that a flag and a spec
    /// field resolve to the same options. Null (with the error on <paramref name="console"/>) when the line does not parse.
    /// </summary>
    public static CommandSettings? Parse(string[] args, IAnsiConsole console)
    {
        var capture = new CaptureSettings();
        Run(args, console, capture);
        return capture.Settings;
    }

    sealed class CaptureSettings : ICommandInterceptor
    {
        public CommandSettings? Settings { get; private set; }
        public void Intercept(CommandContext context, CommandSettings settings)
        {
            Settings = settings;
            throw new ParsedOnly();
        }
    }

    /// <summary>Stops a <see cref="Parse"/> run after binding; never shown.</summary>
    sealed class ParsedOnly : Exception;

    static int Run(string[] args, IAnsiConsole? console, ICommandInterceptor? interceptor)
    {
        // Redirected output (a log file, CI, a Slurm job) has no terminal width; Spectre then assumes 80 columns and wraps
        // every table cell into unreadable slivers. Logs are read in editors: give tables room.
        if (console is null && Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("retribooru");
            // An unknown option is an error (a misspelt --checkpoint-every must not run with its default).
            config.UseStrictParsing();
            if (console is not null) config.ConfigureConsole(console);
            if (interceptor is not null) config.SetInterceptor(interceptor);
            config.SetExceptionHandler((exception, _) =>
            {
                if (exception is ParsedOnly || exception.InnerException is ParsedOnly) return ExitCodes.Ok;
                var target = console ?? AnsiConsole.Console;
                var log = ErrorLog.Write(args, exception);
                target.MarkupLine($"[red]error:[/] {Markup.Escape(RetriBooru.Runtime.ExceptionCause.Of(exception).Message)}{Markup.Escape(UnknownOptionHint(exception, args))}" +
                                  (log is null ? "" : $" [grey](details: {Markup.Escape(log)})[/]"));
                return exception is CommandParseException or CommandRuntimeException ? ExitCodes.Usage : ExitCodes.Failure;
            });
            config.AddCommand<DoctorCommand>("doctor")
                .WithDescription("Check that TorchSharp loads, print versions, device, threads and a matmul benchmark.");
            config.AddCommand<QuickstartCommand>("quickstart")
                .WithDescription("The main job: build RetriBooru-Synth, take the tiny base pretrained on it (shipped; --set base.checkpoint=null trains it), train RetriNet and the text-only baseline, evaluate, write a report.");
            config.AddCommand<RunCommand>("run")
                .WithDescription("Run an experiment spec (experiments/*.json): sweeps, models, schemes, evaluation, report.");
            config.AddCommand<MergeCommand>("merge")
                .WithDescription("Merge run folders (e.g. one per sweep point from a job array) into one run with one report.");
            config.AddBranch("runs", runs =>
            {
                runs.SetDescription("List experiment runs (newest first) with their summary metrics; grid compares a run's samples.");
                runs.SetDefaultCommand<RunsCommand>();
                runs.AddCommand<RunsGridCommand>("grid").WithDescription("One PNG: per reference set, the references and each model's samples.");
                runs.AddCommand<RunsAttributesCommand>("attributes").WithDescription("Attribute agreement per attribute (hair colour, top colour, ...), re-read from a run's samples: which parts of the references each model copies.");
                runs.AddCommand<RunsExportBaseCommand>("export-base").WithDescription("A run's trained base as a model folder a spec can name (base.checkpoint), with the record of what trained it.");
                runs.AddCommand<RunsPageCommand>("page").WithDescription("A study's results page (markdown tables with intervals + sample grid) from its finished runs.");
            });
            config.AddBranch("dataset", dataset =>
            {
                dataset.SetDescription("Build, generate and inspect RetriBooru datasets.");
                dataset.AddCommand<DatasetSynthCommand>("synth").WithDescription("Generate the synthetic anime world (RetriBooru-Synth) and build it into a dataset.");
                dataset.AddCommand<DatasetBuildCommand>("build").WithDescription("Ingest a Danbooru-style folder into a dataset with leakage-free reference manifests.");
                dataset.AddCommand<DatasetStatsCommand>("stats").WithDescription("Print a built dataset's stats as tables.");
                dataset.AddCommand<DatasetBenchCommand>("bench").WithDescription("Measure images/s generated and ingested.");
            });
            config.AddBranch("model", model =>
            {
                model.SetDescription("Diffusion backbone: parameter counts, benchmark.");
                model.AddCommand<ModelInfoCommand>("info").WithDescription("Print parameter counts per component of a model config (tiny, sd15).");
                model.AddCommand<ModelBenchmarkCommand>("benchmark").WithDescription("Training steps/s, DDIM sampling time and memory of a config on this machine.");
                model.AddCommand<ModelDiagnoseCommand>("diagnose").WithDescription("Denoising error per timestep on real images, KID (with floor and ceiling) and readability of samples.");
                model.AddCommand<SoakCommand>("soak").WithDescription("Training and sampling for a long time under constant garbage collections; counts failures (exit 1 if any).");
                model.AddCommand<StepBenchmarkCommand>("step-benchmark").WithDescription("Training step time of RetriNet (and the baselines) with references vs the base U-Net step, same run; peak memory.");
            });
            config.AddCommand<TrainBaseCommand>("train-base").WithDescription("Train a text-to-image model from scratch on a dataset folder (the tiny config on CPU).");
            config.AddCommand<TrainCommand>("train").WithDescription("Train RetriNet or a baseline (controlnet, ipadapter, text-only) on a manifest, from a base model.");
            config.AddCommand<SampleCommand>("sample").WithDescription("Generate images from a trained reference model, prompt and reference images.");
            config.AddCommand<SampleBaseCommand>("sample-base").WithDescription("Generate images from a text-to-image model (DDIM + classifier-free guidance).");
            config.AddCommand<EvaluateCommand>("evaluate").WithDescription("Generate K samples per reference set of a split with recorded seeds, score them, write results.csv/json with 95% CIs.");
            config.AddBranch("metrics", metrics =>
            {
                metrics.SetDescription("Identity similarity, prompt consistency, SWD and leakage scores.");
                metrics.AddCommand<MetricsBenchCommand>("bench").WithDescription("Images per second for each embedder, the VQA probe and the full SWD pipeline.");
            });
        });
        return app.Run(args);
    }

    /// <summary>Every long option any verb declares, e.g. "checkpoint-every".</summary>
    public static IReadOnlyList<string> KnownOptions { get; } = typeof(CliApp).Assembly.GetTypes()
        .Where(t => typeof(CommandSettings).IsAssignableFrom(t))
        .SelectMany(t => t.GetProperties())
        .SelectMany(p => p.GetCustomAttributes(typeof(CommandOptionAttribute), inherit: true).Cast<CommandOptionAttribute>())
        .SelectMany(a => a.LongNames)
        .Distinct(StringComparer.Ordinal)
        .ToList();

    /// <summary>Every long option whose value is a boolean (a switch that may also take true or false), e.g. "skip-unseen".</summary>
    public static IReadOnlyList<string> BooleanOptions { get; } = typeof(CliApp).Assembly.GetTypes()
        .Where(t => typeof(CommandSettings).IsAssignableFrom(t))
        .SelectMany(t => t.GetProperties())
        .Where(p => p.PropertyType == typeof(bool) || p.PropertyType == typeof(bool?))
        .SelectMany(p => p.GetCustomAttributes(typeof(CommandOptionAttribute), inherit: true).Cast<CommandOptionAttribute>())
        .SelectMany(a => a.LongNames)
        .Distinct(StringComparer.Ordinal)
        .ToList();

    static string UnknownOptionHint(Exception exception, string[] args)
    {
        // A switch takes true or false or nothing; any other word after it reaches the parser as a command of its own.
        var command = System.Text.RegularExpressions.Regex.Match(exception.Message, "Unknown command '([^']+)'");
        if (command.Success)
        {
            int at = Array.IndexOf(args, command.Groups[1].Value);
            if (at > 0 && args[at - 1].StartsWith("--", StringComparison.Ordinal) && BooleanOptions.Contains(args[at - 1][2..], StringComparer.Ordinal))
                return $" ({args[at - 1]} takes true or false, or no value for true; got '{args[at]}')";
            return "";
        }
        var match = System.Text.RegularExpressions.Regex.Match(exception.Message, "Unknown option '([^']+)'");
        if (!match.Success) return "";
        var name = match.Groups[1].Value;
        // The known options are every verb's: an exact match is another verb's option, and "did you mean --out?" for
        // `runs --out` would suggest the very option that was refused.
        if (KnownOptions.Contains(name, StringComparer.Ordinal)) return $" (--{name} belongs to other commands; --help lists this one's options)";
        return RetriBooru.Runtime.DidYouMean.Hint(name, KnownOptions, "--");
    }
}

/// <summary>Full exception details go to a log file, so the console shows one clear line.</summary>
public static class ErrorLog
{
    static int sequence;

    public static string? Write(string[] args, Exception exception)
    {
        try
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            var dir = Path.Combine(root, "retribooru", "logs");
            Directory.CreateDirectory(dir);
            // A sequence number too: two errors in one second of one process (parallel in-process runs) must not share a file.
            var path = Path.Combine(dir, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}-{Interlocked.Increment(ref sequence)}.log");
            RetriBooru.Runtime.AtomicFile.WriteAllText(path, $"retribooru {string.Join(' ', args)}\n{DateTime.UtcNow:u}\n\n{exception}\n");
            return path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // a read-only home must not hide the original error
        }
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
