using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>
/// A CLI option's help, read from the library's settings record (the one help text specs and the CLI share), with the
/// record's default appended; the option stays null when not given, so the record's default applies.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingHelpAttribute(Type record, string property) : DescriptionAttribute
{
    public Type Record => record;
    public string Property => property;

    public override string Description
    {
        get
        {
            var setting = SettingFields.Field(record, property);
            // Spectre renders descriptions as markup: the text is escaped so brackets in help stay text.
            return Markup.Escape(SettingFields.Default(record, property) is { } value ? $"{setting.Help} (default: {Show(value)})" : setting.Help);
        }
    }

    static string Show(object value) => value switch
    {
        Enum e => TypeDescriptor.GetConverter(e.GetType()).ConvertToInvariantString(e) ?? e.ToString(),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>Options every verb that trains, samples or evaluates shares: where tensors live, how many threads they use, the seed (one default for every verb).</summary>
public abstract class RuntimeSettings : CommandSettings
{
    public const long DefaultSeed = 0;

    [CommandOption("--seed <N>")]
    [Description("Seed of every random draw (initial weights, batches, noise, reference-set choice, bootstrap); recorded with the results.")]
    [DefaultValue(DefaultSeed)]
    public long Seed { get; init; } = DefaultSeed;

    [CommandOption("--device <DEVICE>")]
    [Description("cpu, or cuda / cuda:N on a machine with a CUDA build of libtorch.")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--threads <N>")]
    [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores, or RETRIBOORU_THREADS; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
    public int Threads { get; init; } = TorchRuntime.DefaultThreads;

    public override ValidationResult Validate() =>
        Threads is < 1 or > 1024 ? ValidationResult.Error($"--threads must be in [1, 1024], not {Threads}") : ValidationResult.Success();
}

/// <summary>
/// The runtime options plus the output folder of a verb that writes one result folder: refused when it holds an earlier
/// result unless <c>--overwrite</c> (or, where the verb trains, <c>--resume</c>) is given.
/// </summary>
public abstract class OutputSettings : RuntimeSettings
{
    [CommandOption("--out <DIR>")]
    [Description("Output folder (required): new or empty; one holding an earlier result is refused unless --overwrite is given. What the verb writes there is in its description.")]
    public string Out { get; init; } = "";

    [CommandOption("--overwrite")]
    [Description("Replace the earlier result in OUT: the new one is written to OUT.new and swapped in only when it is complete.")]
    public bool Overwrite { get; init; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out is required") : base.Validate();
}

/// <summary>How `evaluate` and `sample` draw a sample: fields of <see cref="Metrics.EvaluationSettings"/>, so both verbs sample the same way.</summary>
public abstract class ReferenceSamplingSettings : OutputSettings
{
    [CommandOption("--sampling-steps|--steps <N>"), SettingHelp(typeof(Metrics.EvaluationSettings), nameof(Metrics.EvaluationSettings.SamplingSteps))]
    public int? SamplingSteps { get; init; }

    [CommandOption("--text-guidance|--text-scale <S>"), SettingHelp(typeof(Metrics.EvaluationSettings), nameof(Metrics.EvaluationSettings.TextGuidance))]
    public double? TextGuidance { get; init; }

    [CommandOption("--reference-guidance|--reference-scale <S>"), SettingHelp(typeof(Metrics.EvaluationSettings), nameof(Metrics.EvaluationSettings.ReferenceGuidance))]
    public double? ReferenceGuidance { get; init; }
}

/// <summary>Binds a verb's options to a settings record: each record field takes the option whose flag is its JSON name in kebab case.</summary>
public static class SettingsBinder
{
    /// <summary>The record with every given option applied over its defaults.</summary>
    /// <remarks>
    /// Domain words (views, schedules) come in as text and are parsed here, so a typo gets the did-you-mean message
    /// (Spectre's own conversion would only say "failed to convert").
    /// </remarks>
    public static T Bind<T>(CommandSettings options) where T : new() => Bind<T>(options, out var problems) is var record && problems.Count == 0
        ? record : throw new ArgumentException(string.Join("; ", problems));

    /// <summary>The record, and the options whose text is not a known domain word (the record keeps its default there).</summary>
    public static T Bind<T>(CommandSettings options, out IReadOnlyList<string> problems) where T : new()
    {
        object record = new T();
        var found = new List<string>();
        foreach (var field in SettingFields.Of(typeof(T)))
        {
            if (OptionProperty(options.GetType(), field.Flag) is not { } property) continue;
            if (property.GetValue(options) is not { } value) continue;
            if (value is string text && field.ValueType.IsEnum)
            {
                try { value = Words.Parse(field.ValueType, text); }
                catch (ArgumentException e) { found.Add($"{field.Flag}: {e.Message}"); continue; }
            }
            field.Property.SetValue(record, value);
        }
        problems = found;
        return (T)record;
    }

    /// <summary>A domain word given on the command line, or the one-line problem naming the flag.</summary>
    public static bool TryWord<T>(string flag, string text, out T value, out string problem) where T : struct, Enum
    {
        problem = Words.TryParse(text, out value) ? "" : $"{flag}: {Words.Unknown<T>(text)}";
        return problem == "";
    }

    /// <summary>The verb's property whose option has <paramref name="flag"/> among its long names, or null.</summary>
    public static PropertyInfo? OptionProperty(Type settings, string flag) =>
        settings.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(p => p.GetCustomAttribute<CommandOptionAttribute>() is { } option && option.LongNames.Any(n => "--" + n == flag));

    /// <summary>Spectre's validation result for a list of problems, joined into one line.</summary>
    public static ValidationResult Result(IReadOnlyList<string> problems) =>
        problems.Count == 0 ? ValidationResult.Success() : ValidationResult.Error(string.Join("; ", problems));
}
