using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class ColourShiftTests(SmallReferenceWorld world) : IClassFixture<SmallReferenceWorld>
{
    static Tensor Filled(float r, float g, float b, int size = 4) => ones(3, size, size) * tensor(new[] { r, g, b }).reshape(3, 1, 1);

    static float[] Pixel(Tensor image, int y, int x) => image[.., y, x].data<float>().ToArray();

    [Fact]
    public void The_rotation_keeps_grey_and_a_third_of_a_turn_cycles_red_green_and_blue()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var identity = ColourShift.Rotation(0);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                Assert.Equal(i == j ? 1 : 0, identity[i, j], 12);
        var turn = tensor(ColourShift.Rotation(2 * Math.PI / 3), dtype: ScalarType.Float32);
        var grey = tensor(new[] { 0.3f, 0.3f, 0.3f });
        Assert.True((turn.matmul(grey) - grey).abs().max().item<float>() < 1e-6);
        // Pure red in [-1, 1] goes to pure green: the three primaries trade places, each keeps its brightness.
        var red = tensor(new[] { 1f, -1f, -1f });
        Assert.True((turn.matmul(red) - tensor(new[] { -1f, 1f, -1f })).abs().max().item<float>() < 1e-5);
        // Any angle keeps a colour's grey level (channel mean) and its distance from grey.
        var colour = tensor(new[] { 0.7f, -0.2f, 0.1f });
        var rotated = tensor(ColourShift.Rotation(1.1), dtype: ScalarType.Float32).matmul(colour);
        Assert.Equal(colour.mean().item<float>(), rotated.mean().item<float>(), 5);
        Assert.Equal((colour - colour.mean()).norm().item<float>(), (rotated - rotated.mean()).norm().item<float>(), 5);
    }

    [Fact]
    public void The_figure_and_its_references_change_colour_together_and_the_background_stays()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        // A red figure in the left half of a blue picture; its reference crop shows the same red.
        var image = Filled(-1f, -1f, 0.8f);
        image[.., .., ..2] = Filled(0.9f, -0.6f, -0.6f)[.., .., ..2];
        var mask = zeros(1, 4, 4);
        mask[.., .., ..2] = tensor(1f);
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> references = [[new ReferenceCrop(Filled(0.9f, -0.6f, -0.6f), Concept.Clothes, "s")]];
        using var generator = Seeding.TorchGenerator(5, "colour-shift-test");
        var (images, shifted) = ColourShift.Apply(image.unsqueeze(0), [mask], references, 1.0, generator);
        var figure = Pixel(images[0], 1, 0);
        Assert.True(Math.Abs(figure[0] - 0.9f) > 0.05 || Math.Abs(figure[1] + 0.6f) > 0.05, "the figure kept its colour at probability 1");
        Assert.Equal(Pixel(image, 1, 3), Pixel(images[0], 1, 3)); // background untouched
        var reference = Pixel(shifted[0][0].Image, 2, 2);
        for (int c = 0; c < 3; c++) Assert.Equal(figure[c], reference[c], 5); // one angle for the figure and its references
        Assert.Equal(Concept.Clothes, shifted[0][0].Concept);
        Assert.True(images.max().item<float>() <= 1f && images.min().item<float>() >= -1f);
    }

    [Fact]
    public void Probability_0_draws_nothing_and_bad_values_are_refused()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var images = rand(2, 3, 4, 4);
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> references = [[], []];
        using var a = Seeding.TorchGenerator(7, "colour-shift-test");
        using var b = Seeding.TorchGenerator(7, "colour-shift-test");
        var (same, sameReferences) = ColourShift.Apply(images, [null, null], references, 0, a);
        Assert.Same(images, same);
        Assert.Same(references, sameReferences);
        Assert.Equal(rand(4, generator: b).data<float>().ToArray(), rand(4, generator: a).data<float>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => ColourShift.Apply(images, [null, null], references, 1.5, a));
        Assert.Throws<ArgumentException>(() => ColourShift.Apply(images, [null], references, 0.5, a));
        var problem = Assert.Throws<ArgumentOutOfRangeException>(() => new ReferenceTrainingOptions { ColourShift = -0.1 }.Validate());
        Assert.Contains("--colour-shift", problem.Message);
    }

    [Fact]
    public void Off_it_leaves_the_stage_key_and_the_losses_unchanged_and_on_it_changes_the_losses()
    {
        Assert.Contains("\"colour_shift\":0.5", System.Text.Json.JsonSerializer.Serialize(new ReferenceTrainingOptions { ColourShift = 0.5 }, Data.WorkbenchJson.Lines));
        world.AssertOffChangesNothingAndOnChangesTheLosses(new ReferenceTrainingOptions { ColourShift = 0 }, new ReferenceTrainingOptions { ColourShift = 0.5 });
    }

    [Fact]
    public void Text_only_ignores_it_in_training_and_in_its_stage_key()
    {
        using var dir = new TempDir();
        List<double> Losses(double shift)
        {
            using var model = world.NewBase(seed: 8);
            using var data = world.Examples();
            using var task = new ReferenceTrainingTask(model, new Modeling.TextOnlyModel(model.Unet), data, new ReferenceTrainingOptions { ColourShift = shift });
            return new DiffusionTrainer(task, new TrainerOptions { Steps = 2, BatchSize = 6, LearningRate = 3e-3, WarmupSteps = 1, Seed = 11 })
                .Run(Path.Combine(dir.Path, shift.ToString(System.Globalization.CultureInfo.InvariantCulture))).Losses.ToList();
        }
        Assert.Equal(Losses(0), Losses(1));
        var shifted = new ReferenceTrainingOptions { ColourShift = 0.5 };
        Assert.Equal(StageCache.Key(ExperimentRunner.TrainKey(new ReferenceTrainingOptions(), ModelKind.TextOnly)), StageCache.Key(ExperimentRunner.TrainKey(shifted, ModelKind.TextOnly)));
        Assert.NotEqual(StageCache.Key(ExperimentRunner.TrainKey(new ReferenceTrainingOptions(), ModelKind.RetriNet)), StageCache.Key(ExperimentRunner.TrainKey(shifted, ModelKind.RetriNet)));
    }
}
