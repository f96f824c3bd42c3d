using RetriBooru.Settings;
using RetriBooru.Cli;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

public class DataManifestTests
{
    static string Committed(string name) => Path.Combine(RepoPaths.Root, "data-manifests", "synth-default", name);

    [Fact]
    public void Regenerating_the_default_synthetic_dataset_gives_the_committed_manifest_and_stats_byte_for_byte()
    {
        using var dir = new TempDir();
        var console = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["dataset", "synth", "--out", dir.Path], console));
        Assert.Equal(File.ReadAllBytes(Committed("scheme_b.jsonl")), File.ReadAllBytes(Path.Combine(dir.Path, DatasetLayout.ManifestPath(ReferenceScheme.B))));
        Assert.Equal(File.ReadAllBytes(Committed("stats.json")), File.ReadAllBytes(Path.Combine(dir.Path, DatasetLayout.ManifestsFolder, DatasetLayout.StatsFile)));
        Assert.Contains("leakage-free", console.Output);

        // `dataset stats` prints the same numbers as tables.
        var stats = DatasetStats.Read(dir.Path);
        var statsConsole = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["dataset", "stats", dir.Path], statsConsole));
        Assert.Contains("clothing identities", statsConsole.Output);
        Assert.Contains(stats.Images.ToString("N0"), statsConsole.Output);
        Assert.Contains("15+", statsConsole.Output);
        // Ground truth sits next to the records, one line per generated image.
        Assert.Equal(stats.ImagesFound, SynthAttributesFile.Read(dir.Path).Count);
    }

    [Fact]
    public void The_default_dataset_settings_are_the_quickstarts_world()
    {
        // `dataset synth --out D` (the record's defaults) makes the dataset the quickstart trains on.
        var quickstart = Experiments.SpecLoader.Load(Path.Combine(RepoPaths.Root, "experiments", "quickstart.json"));
        Assert.Equal(new DatasetSettings(), quickstart.Dataset);
        Assert.Equal(SynthVocabulary.MaxOutfitsPerCharacter, SettingFields.Field(typeof(DatasetSettings), nameof(DatasetSettings.Outfits)).Setting.Max);
    }

    [Fact]
    public void The_committed_stats_describe_the_default_world()
    {
        var stats = DatasetStats.Read(Committed("stats.json"));
        Assert.Equal(16, stats.Characters);
        Assert.Equal(16 * 30, stats.ImagesFound);
        Assert.True(stats.Manifests["b"].Leakage.IsLeakageFree);
        Assert.Equal(4, stats.Splits[SplitNames.Unseen].Characters);
        Assert.Equal(stats.Images, stats.SimilarHistogram.Values.Sum());
        Assert.True(File.Exists(Path.Combine(RepoPaths.Root, "data-manifests", "SCHEMA.md")));
    }

    [Fact]
    public void Build_of_a_missing_source_is_a_clear_error()
    {
        using var dir = new TempDir();
        var console = new TestConsole().Width(200);
        int code = CliApp.Run(["dataset", "build", "--source", dir.File("nope"), "--out", dir.File("out")], console);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("does not exist", console.Output);
    }

    [Fact]
    public void The_cli_says_whether_it_created_or_replaced_a_dataset_and_what_it_cleaned_up()
    {
        using var dir = new TempDir();
        var data = dir.File("data");
        string Synth()
        {
            var console = new TestConsole().Width(300);
            Assert.Equal(0, CliApp.Run(["dataset", "synth", "--out", data, "--characters", "2", "--images-per-character", "4", "--outfits", "1", "--size", "32"], console));
            return console.Output;
        }
        Assert.Contains($"created {data}", Synth());
        Directory.CreateDirectory(Path.Combine(data + ".new", "images")); // what a killed rebuild leaves
        var second = Synth();
        Assert.Contains($"removed {data}.new", second);
        Assert.Contains($"replaced the earlier dataset in {data}", second);
        Assert.False(Directory.Exists(data + ".new"));
    }

    [Fact]
    public void Invalid_options_are_usage_errors()
    {
        using var dir = new TempDir();
        var console = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["dataset", "synth", "--out", dir.Path, "--scheme", "c"], console));
        Assert.NotEqual(0, CliApp.Run(["dataset", "synth"], new TestConsole()));
    }
}
