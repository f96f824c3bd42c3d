using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Tests;

/// <summary>Trains one attribute probe on drawn scenes and opens one ResNet18 session, shared by the probe and SWD tests.</summary>
public sealed class MetricsProbeFixture : IDisposable
{
    public static readonly AttributeSchema Schema = new([
        new AttributeSpec("hair", MetricsShapeWorld.HairColours, MetricsShapeWorld.HairColours.ToDictionary(v => v, v => v + "_hair")),
        new AttributeSpec("clothing", MetricsShapeWorld.ClothingColours),
        new AttributeSpec("background", MetricsShapeWorld.Backgrounds),
        new AttributeSpec("pose", MetricsShapeWorld.Poses),
        new AttributeSpec("arms", MetricsShapeWorld.Arms),
    ]);

    public AttributeProbe Probe { get; }
    public ProbeReport Report { get; }
    public ResNet18Embedder Embedder { get; } = new();

    public MetricsProbeFixture()
    {
        Torch.Load();
        var rng = new Random(11);
        var samples = new List<ProbeSample>();
        for (int i = 0; i < 320; i++)
        {
            var scene = MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng);
            using var drawn = MetricsShapeWorld.Draw(scene, 64);
            samples.Add(new ProbeSample(drawn.Image.Copy(), scene.Attributes, $"scene {i}"));
        }
        (Probe, Report) = AttributeProbe.Train(Schema, samples, new AttributeProbeOptions { Epochs = 15, Seed = 5 });
        foreach (var s in samples) s.Image.Dispose();
    }

    public void Dispose()
    {
        Probe.Dispose();
        Embedder.Dispose();
    }
}

/// <summary>The probe and scores tests share one trained probe (training once keeps the suite fast).</summary>
[Xunit.CollectionDefinition(Name)]
public sealed class MetricsProbeCollection : Xunit.ICollectionFixture<MetricsProbeFixture>
{
    public const string Name = "metrics-probe";
}
