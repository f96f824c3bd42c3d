using System.ComponentModel;
using RetriBooru.Data;
using RetriBooru.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>
/// Options shared by `dataset build` and `dataset synth`: how references, splits and checks are made. Each is a field of
/// <see cref="DatasetSettings"/> (the spec's <c>dataset</c> section) and takes its name, help and default from there.
/// </summary>
public class DatasetBuildSettings : CommandSettings
{
    [CommandOption("--seed <S>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.Seed))]
    public long? Seed { get; init; }

    [CommandOption("--face-references|--face-refs <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.FaceReferences))]
    public int? FaceReferences { get; init; }

    [CommandOption("--clothes-references|--clothes-refs <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.ClothesReferences))]
    public int? ClothesReferences { get; init; }

    [CommandOption("--near-duplicate-threshold|--near-dup-threshold <BITS>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.NearDuplicateThreshold))]
    public int? NearDuplicateThreshold { get; init; }

    [CommandOption("--unseen-fraction <F>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.UnseenFraction))]
    public double? UnseenFraction { get; init; }

    [CommandOption("--heldout-fraction <F>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.HeldoutFraction))]
    public double? HeldoutFraction { get; init; }

    [CommandOption("--crop-size <PX>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.CropSize))]
    public int? CropSize { get; init; }

    [CommandOption("--max-pixels <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.MaxPixels))]
    public long? MaxPixels { get; init; }

    // Which manifests to write is the verb's choice (a run builds the schemes its spec trains), not a dataset setting.
    [CommandOption("--scheme <SCHEME>")]
    [Description("Manifests to write: b (leakage-free, default), a (crops of the target, leakage study only) or both.")]
    [DefaultValue("b")]
    public string Scheme { get; init; } = "b";

    /// <summary>The dataset settings these options give (record defaults for every option not given).</summary>
    public DatasetSettings Dataset() => SettingsBinder.Bind<DatasetSettings>(this);

    public IReadOnlyList<ReferenceScheme> Schemes() => Scheme switch
    {
        "a" => [ReferenceScheme.A],
        "b" => [ReferenceScheme.B],
        "both" or "ab" => [ReferenceScheme.A, ReferenceScheme.B],
        _ => throw new ArgumentException($"--scheme must be a, b or both, not '{Scheme}'"),
    };

    public override ValidationResult Validate()
    {
        var problems = Dataset().Problems(f => f.Flag).ToList();
        try { Schemes(); }
        catch (ArgumentException e) { problems.Add(e.Message); }
        return SettingsBinder.Result(problems);
    }
}
